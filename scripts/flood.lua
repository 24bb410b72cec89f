-- wrk script for `scripts/load flood`: an anonymous flood. Every request carries no cookie,
-- so each one that writes the session creates a new one on the server, as a bot would.
--
-- done() prints one `RESULT key=value ...` line and a `TIMELINE t=... 2xx=... other=...`
-- line per second, for scripts/load to parse. Environment: FLOOD_PATH (/count).

local path = os.getenv("FLOOD_PATH") or "/count"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   -- "<unix second> <class>" -> count: wrk's thread:get copies flat tables only.
   timeline = {}
end

function request()
   return wrk.format("GET", path, {})
end

function response(status, headers, body)
   local class = (status >= 200 and status < 300) and "s2xx" or "other"
   local key = os.time() .. " " .. class
   timeline[key] = (timeline[key] or 0) + 1
end

function done(summary, latency, requests)
   local rows, secs = {}, {}
   for _, thread in ipairs(threads) do
      for key, n in pairs(thread:get("timeline") or {}) do
         local sec, class = string.match(key, "^(%d+) (%w+)$")
         sec = tonumber(sec)
         if rows[sec] == nil then
            rows[sec] = { s2xx = 0, other = 0 }
            table.insert(secs, sec)
         end
         rows[sec][class] = rows[sec][class] + n
      end
   end
   table.sort(secs)
   local e = summary.errors
   io.write(string.format(
      "RESULT rps=%.0f requests=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f socket_errors=%d non2xx3xx=%d\n",
      summary.requests / (summary.duration / 1e6), summary.requests,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      e.connect + e.read + e.write + e.timeout, e.status))
   for _, sec in ipairs(secs) do
      io.write(string.format("TIMELINE t=%d 2xx=%d other=%d\n",
         sec - secs[1], rows[sec].s2xx, rows[sec].other))
   end
end

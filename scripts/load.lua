-- wrk script for scripts/load: spreads requests over LOAD_SLOTS (10,000) sessions.
--
-- Each wrk thread owns its share of the slots and requests them round robin. A slot's first
-- request carries no cookie; the `Set-Cookie` of the answer (a new session, `visits` 1) is
-- given to the oldest slot still waiting for one, and later requests of that slot send it.
-- After LOAD_ROTATE requests (0: never) a slot drops its cookie and starts a new session,
-- so sessions keep being created while the old ones expire on the server.
--
-- Every answer carries the counter, `{"visits":N}`, and the cookie it was saved under (the
-- servers resend an unchanged cookie with every change). Checks:
--   * a known session's counter must grow: one that goes back or restarts was lost;
--   * a new cookie that no slot asked for means a request's session was not found (lost,
--     or expired: each slot must come round within the server's TTL);
--   * with LOAD_FAULT=1 (the Redis fault run): from a thread's first 5xx on, the outage
--     phase, every slot's last acknowledged counter is kept; once LOAD_RECOVERED_FILE
--     exists (scripts/load creates it when the service answers again after Redis is back),
--     each of those sessions must answer with a higher counter: a session saved before the
--     stop survived it. At least one 5xx and a recovery must have been seen.
-- Without LOAD_FAULT, any socket error or non-2xx/3xx status fails the run (exit 1).
--
-- Environment: LOAD_SLOTS (10000), LOAD_THREADS (2, as wrk -t), LOAD_ROTATE (10),
-- LOAD_PATH (/count), LOAD_FAULT (0), LOAD_RECOVERED_FILE, LOAD_TIMELINE (0; 1 prints
-- 2xx/5xx per second).
-- done() prints one `RESULT key=value ...` line (and `TIMELINE`, `FAULT` lines) for
-- scripts/load to parse.

local slots_total = tonumber(os.getenv("LOAD_SLOTS") or "10000")
local rotate = tonumber(os.getenv("LOAD_ROTATE") or "10")
local path = os.getenv("LOAD_PATH") or "/count"
local fault = os.getenv("LOAD_FAULT") == "1"
local timeline_on = os.getenv("LOAD_TIMELINE") == "1"
local recovered_file = os.getenv("LOAD_RECOVERED_FILE")
local last_look = 0

-- Main state: number the threads (LOAD_THREADS must match wrk's -t).
local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("thread_index", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

-- Thread state.
local nslots
local cookie, visits, uses = {}, {}, {}
local slot_of = {}          -- cookie -> slot
local waiting, head, tail = {}, 1, 0 -- slots that sent no cookie, oldest first
local next_slot = 0
local phase = 0             -- 0: before any 5xx, 1: 5xx seen, 2: recovered
                            -- (a thread's own view of the outage)
local before = {}           -- slot -> last counter acknowledged before the recovery
local after_ok = {}         -- slot -> true once an answer after the outage exceeded it

function init(args)
   -- Read what setup() set, then spread the slots evenly over the threads.
   local index = thread_index -- set by setup()
   local count = tonumber(os.getenv("LOAD_THREADS") or "2") -- must match wrk -t
   nslots = math.floor(slots_total / count)
   if index < slots_total % count then nslots = nslots + 1 end
   for s = 1, nslots do uses[s] = 0 end
   -- A global: done() reads it from each thread with thread:get("stats").
   stats = {
      slots = nslots, sent_fresh = 0, created = 0, abandoned = 0, orphans = 0, back = 0,
      odd = 0, s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0, other = 0,
      phase = 0, checked = 0, survived = 0,
   }
   -- Statuses per second, keyed "<unix second> <class>" (wrk's thread:get copies flat
   -- tables only: a nested one crashes it).
   timeline = {}
end

function request()
   next_slot = next_slot % nslots + 1
   local s = next_slot
   local c = cookie[s]
   if c ~= nil and rotate > 0 and uses[s] >= rotate then
      -- Abandon the session: the server expires it.
      slot_of[c] = nil
      cookie[s] = nil
      c = nil
      stats.abandoned = stats.abandoned + 1
   end
   if c ~= nil then
      uses[s] = uses[s] + 1
      return wrk.format("GET", path, { Cookie = c })
   end
   tail = tail + 1
   waiting[tail] = s
   stats.sent_fresh = stats.sent_fresh + 1
   return wrk.format("GET", path, {})
end

local function tick(class)
   if not timeline_on then return end
   local key = os.time() .. " " .. class
   timeline[key] = (timeline[key] or 0) + 1
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      stats.s2xx = stats.s2xx + 1
      tick("s2xx")
   elseif status >= 500 and status < 600 then
      stats.s5xx = stats.s5xx + 1
      tick("s5xx")
      if phase == 0 and fault then
         -- The outage starts: remember every session's counter.
         phase = 1
         stats.phase = 1
         for s = 1, nslots do
            if visits[s] ~= nil and cookie[s] ~= nil then
               before[s] = visits[s]
               stats.checked = stats.checked + 1
            end
         end
      end
      return
   else
      if status >= 300 and status < 400 then
         stats.s3xx = stats.s3xx + 1
      elseif status >= 400 and status < 500 then
         stats.s4xx = stats.s4xx + 1
      else
         stats.other = stats.other + 1
      end
      tick("other")
      return
   end
   if phase == 1 and recovered_file ~= nil and os.time() ~= last_look then
      -- Once a second, look whether scripts/load has seen the service recover.
      last_look = os.time()
      local f = io.open(recovered_file, "r")
      if f ~= nil then
         f:close()
         phase = 2
         stats.phase = 2
      end
   end

   local set_cookie = headers["set-cookie"] or headers["Set-Cookie"]
   local v = tonumber(string.match(body or "", '"visits":(%d+)'))
   if set_cookie == nil or v == nil then
      stats.odd = stats.odd + 1
      return
   end
   local c = string.match(set_cookie, "^([^;]+)")
   local s = slot_of[c]
   if s == nil then
      -- A new session: the oldest slot still waiting takes it.
      if v ~= 1 then stats.odd = stats.odd + 1 end
      while head <= tail and cookie[waiting[head]] ~= nil do
         waiting[head] = nil
         head = head + 1
      end
      if head > tail then
         -- Nobody asked for a new session: a request's session was not found.
         stats.orphans = stats.orphans + 1
         return
      end
      s = waiting[head]
      waiting[head] = nil
      head = head + 1
      cookie[s] = c
      slot_of[c] = s
      visits[s] = v
      uses[s] = 1
      stats.created = stats.created + 1
      if phase == 1 then
         before[s] = v
         stats.checked = stats.checked + 1
      end
      return
   end
   if v <= visits[s] then
      stats.back = stats.back + 1
   end
   visits[s] = v
   if phase == 1 then
      -- Acknowledged during the outage (a request that got through before the stop): it
      -- must survive too.
      if before[s] == nil then stats.checked = stats.checked + 1 end
      before[s] = v
   elseif phase == 2 and before[s] ~= nil and v > before[s] and not after_ok[s] then
      after_ok[s] = true
      stats.survived = stats.survived + 1
   end
end

local function sum(key, all)
   local total = 0
   for _, t in ipairs(all) do total = total + (t[key] or 0) end
   return total
end

function done(summary_, latency, requests)
   local all, timelines = {}, {}
   for _, thread in ipairs(threads) do
      table.insert(all, thread:get("stats") or {})
      table.insert(timelines, thread:get("timeline") or {})
   end
   local seconds = summary_.duration / 1e6
   local e = summary_.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local created = sum("created", all)
   local back = sum("back", all)
   local orphans = sum("orphans", all)
   io.write(string.format(
      "RESULT rps=%.0f requests=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f " ..
      "socket_errors=%d non2xx3xx=%d s2xx=%d s5xx=%d s4xx=%d sessions_created=%d slots=%d " ..
      "abandoned=%d went_back=%d orphans=%d odd=%d\n",
      summary_.requests / seconds, summary_.requests,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
      socket_errors, e.status, sum("s2xx", all), sum("s5xx", all), sum("s4xx", all),
      created, sum("slots", all), sum("abandoned", all), back, orphans, sum("odd", all)))

   local failed = false
   if timeline_on then
      local rows, secs, first = {}, {}, nil
      for _, t in ipairs(timelines) do
         for key, n in pairs(t) do
            local sec, class = string.match(key, "^(%d+) (%w+)$")
            sec = tonumber(sec)
            if rows[sec] == nil then
               rows[sec] = { s2xx = 0, s5xx = 0, other = 0 }
               table.insert(secs, sec)
            end
            rows[sec][class] = rows[sec][class] + n
         end
      end
      table.sort(secs)
      for _, sec in ipairs(secs) do
         local r = rows[sec]
         io.write(string.format("TIMELINE t=%d epoch=%d 2xx=%d 5xx=%d other=%d\n",
            sec - secs[1], sec, r.s2xx, r.s5xx, r.other))
      end
   end
   if fault then
      local checked, survived = sum("checked", all), sum("survived", all)
      local saw_outage, recovered = true, true
      for _, t in ipairs(all) do
         if (t.phase or 0) < 1 then saw_outage = false end
         if (t.phase or 0) < 2 then recovered = false end
      end
      io.write(string.format(
         "FAULT outage_seen=%s recovered=%s sessions_before_stop=%d continued_after=%d lost=%d went_back=%d orphans=%d\n",
         tostring(saw_outage), tostring(recovered), checked, survived, checked - survived,
         back, orphans))
      failed = not saw_outage or not recovered or checked == 0 or survived ~= checked
         or back > 0 or orphans > 0
   else
      failed = socket_errors > 0 or e.status > 0 or back > 0 or orphans > 0
   end
   if failed then
      io.write("FAILED\n")
      io.stdout:flush()
      os.exit(1)
   end
end

//! A Redis Cluster's slot map: which master serves each of the 16384 hash slots.

use std::sync::Arc;

use redis::Value;

/// The masters of a cluster's slots: `(last slot, master address)`, ordered by slot; each
/// range starts after the previous one's last slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct SlotMap(Vec<(u16, Arc<str>)>);

impl SlotMap {
    /// The address of the master serving `slot`, if any range covers it.
    pub fn master_of(&self, slot: u16) -> Option<&Arc<str>> {
        let index = self.0.partition_point(|(last, _)| *last < slot);
        self.0.get(index).map(|(_, address)| address)
    }

    /// The map with `slot` moved to `address` (what a `MOVED` says).
    pub fn moved(&self, slot: u16, address: Arc<str>) -> SlotMap {
        let mut ranges = self.0.clone();
        let index = ranges.partition_point(|(last, _)| *last < slot);
        let Some((last, owner)) = ranges.get(index).cloned() else {
            ranges.push((slot, address));
            return SlotMap(ranges);
        };
        let first = if index == 0 {
            0
        } else {
            ranges[index - 1].0 + 1
        };
        let mut pieces = Vec::with_capacity(3);
        if first < slot {
            pieces.push((slot - 1, owner.clone()));
        }
        pieces.push((slot, address));
        if slot < last {
            pieces.push((last, owner));
        }
        ranges.splice(index..=index, pieces);
        SlotMap(ranges)
    }

    /// Every master's address, once each.
    pub fn masters(&self) -> Vec<String> {
        let mut masters: Vec<String> = self.0.iter().map(|(_, a)| a.to_string()).collect();
        masters.sort();
        masters.dedup();
        masters
    }

    /// The slot map in a `CLUSTER SLOTS` answer from the node at `answering`: `[first, last,
    /// [host, port, …], replicas…]` per range.
    pub fn parse(answer: Value, answering: &str) -> Option<SlotMap> {
        let Value::Array(ranges) = answer else {
            return None;
        };
        let answering_host = answering
            .rsplit_once(':')
            .map_or(answering, |(host, _)| host);
        let mut map = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(range) = range else {
                return None;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (range.first(), range.get(1), range.get(2))
            else {
                return None;
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) if !host.is_empty() && host.as_slice() != b"?" => {
                    String::from_utf8_lossy(host).into_owned()
                }
                _ => answering_host.to_owned(),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            let first = u16::try_from(*first).ok()?;
            let last = u16::try_from(*last).ok()?;
            map.push((first, last, Arc::<str>::from(format!("{host}:{port}"))));
        }
        map.sort_by_key(|&(first, _, _)| first);
        // Gaps (slots no master serves) become ranges of the next master: a request for one gets
        // an error from that node (`MOVED` if the slot is served after all).
        let ranges = map.into_iter().map(|(_, last, address)| (last, address));
        Some(SlotMap(ranges.collect()))
    }
}

/// The hash slot of `key`: CRC16/XMODEM of the key, or of its hash tag (the text between the
/// first `{` and the next `}`, when not empty), modulo 16384.
pub(super) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{SlotMap, slot_of};

    #[test]
    fn a_moved_slot_splits_its_range() {
        let a: Arc<str> = Arc::from("a:1");
        let b: Arc<str> = Arc::from("b:1");
        let map = SlotMap(vec![(99, a.clone()), (16383, b.clone())]);
        let moved = map.moved(50, b.clone());
        assert_eq!(moved.master_of(49), Some(&a));
        assert_eq!(moved.master_of(50), Some(&b));
        assert_eq!(moved.master_of(51), Some(&a));
        assert_eq!(moved.master_of(99), Some(&a));
        assert_eq!(moved.master_of(100), Some(&b));
        let edge = map.moved(0, b.clone()).moved(99, b.clone());
        assert_eq!(edge.master_of(0), Some(&b));
        assert_eq!(edge.master_of(1), Some(&a));
        assert_eq!(edge.master_of(99), Some(&b));
        assert_eq!(map.masters(), vec!["a:1".to_owned(), "b:1".to_owned()]);
    }

    #[test]
    fn slots_agree_with_redis() {
        // `CLUSTER KEYSLOT` of each key, from Redis 7.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b""), 0);
    }
}

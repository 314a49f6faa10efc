//! The budget of a machine-wide gate: its declaration (a capacity in units per device, and the
//! devices), the ledger of who holds how many units on which devices, and the decisions made from
//! them (accounting, placement). Only bytes and pure functions here: `lock.rs` reads and writes
//! them under the queue lock, and `status.rs` reads them for display.
//!
//! # Layout of the `queue` file
//!
//! ```text
//! 0..8      next ticket number (u64, little-endian)
//! 8..16     capacity: units per device (u64)
//! 16..24    magic `rgdecl02` (absent in the 16-byte header of earlier versions)
//! 24..28    number of declared devices (u32)
//! 28..32    lanes (holder slots) = min(capacity × max(devices, 1), 64) (u32)
//! 32..40    FNV-1a 64 of the device list text (u64)
//! 40..44    length of the device list text (u32)
//! 44..64    zero
//! 64..1088  the ledger: one 16-byte entry per lane
//! 1088..    the device list text: ids joined by `,`
//! ```
//!
//! A ledger entry is `units (u32) | check (u32) | devices (u64 bit mask)`: the units its lane's
//! holder holds on *each* device of the mask. All zero means free. `check` ties the other two
//! fields together, so that garbage is told apart from an entry (but see [`account`]: garbage is
//! handled conservatively anyway).

use std::cmp::Reverse;

/// The most holders a machine-wide gate has at once (one lane file each), whatever its capacity.
pub const MAX_HOLDERS: u32 = 64;
/// The most devices a machine-wide gate can declare.
pub const MAX_DEVICES: usize = 64;
/// The longest device id.
pub const MAX_DEVICE_ID_LEN: usize = 64;

pub(crate) const HEADER_LEN: usize = 64;
pub(crate) const ENTRY_LEN: usize = 16;
pub(crate) const LEDGER_OFFSET: u64 = HEADER_LEN as u64;
pub(crate) const DEVICES_OFFSET: u64 = LEDGER_OFFSET + (ENTRY_LEN as u64) * MAX_HOLDERS as u64;
/// The device list text is never longer than this.
pub(crate) const DEVICES_MAX_LEN: usize = MAX_DEVICES * (MAX_DEVICE_ID_LEN + 1);
const MAGIC: [u8; 8] = *b"rgdecl02";
/// Capacities of the 16-byte header written before budgets existed.
const V1_MAX_CAPACITY: u64 = 64;

/// What every user of a gate must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Declaration {
    /// Units per device (a gate without declared devices is one device).
    pub(crate) capacity: u32,
    /// Device ids, in declaration order; empty: none declared.
    pub(crate) devices: Vec<String>,
}

impl Declaration {
    /// Devices for accounting: the declared ones, or the one implicit device.
    pub(crate) fn device_slots(&self) -> usize {
        self.devices.len().max(1)
    }

    /// Units of all devices together: the capacity of the in-process gate in front.
    pub(crate) fn total(&self) -> u64 {
        u64::from(self.capacity) * self.device_slots() as u64
    }

    /// Lane files, one per possible holder.
    pub(crate) fn lanes(&self) -> u32 {
        self.total().min(u64::from(MAX_HOLDERS)) as u32
    }

    pub(crate) fn devices_text(&self) -> String {
        self.devices.join(",")
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        fnv1a(self.devices_text().as_bytes())
    }

    /// Whether a header describes this declaration.
    #[cfg(test)]
    pub(crate) fn matches(&self, h: &Header) -> bool {
        self.matches_fingerprint(h, self.fingerprint())
    }

    /// [`Declaration::matches`] with this declaration's [`fingerprint`](Self::fingerprint)
    /// computed beforehand.
    pub(crate) fn matches_fingerprint(&self, h: &Header, fingerprint: u64) -> bool {
        h.capacity == self.capacity
            && h.devices == self.devices.len() as u32
            && h.fingerprint == fingerprint
    }

    /// How a request for `n` units (`n >= 1`) is served: `n` units on one device, or whole
    /// devices; `None` if neither.
    pub(crate) fn shape(&self, n: u32) -> Option<Shape> {
        if n == 0 || u64::from(n) > self.total() {
            return None;
        }
        if n <= self.capacity {
            return Some(Shape::Units(n));
        }
        (n % self.capacity == 0).then_some(Shape::Devices(n / self.capacity))
    }

    /// The ids of the devices in `mask` (none for a gate without declared devices).
    pub(crate) fn names(&self, mask: u64) -> Vec<String> {
        self.devices
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Every device (a holder whose share is unknown is counted on all of them).
    pub(crate) fn all_mask(&self) -> u64 {
        mask_below(self.device_slots())
    }

    /// The header and device list bytes for `seq`.
    pub(crate) fn encode(&self, seq: u64) -> ([u8; HEADER_LEN], Vec<u8>) {
        let text = self.devices_text().into_bytes();
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&seq.to_le_bytes());
        h[8..16].copy_from_slice(&u64::from(self.capacity).to_le_bytes());
        h[16..24].copy_from_slice(&MAGIC);
        h[24..28].copy_from_slice(&(self.devices.len() as u32).to_le_bytes());
        h[28..32].copy_from_slice(&self.lanes().to_le_bytes());
        h[32..40].copy_from_slice(&fnv1a(&text).to_le_bytes());
        h[40..44].copy_from_slice(&(text.len() as u32).to_le_bytes());
        (h, text)
    }
}

/// How a request is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// This many units on one device.
    Units(u32),
    /// This many whole devices.
    Devices(u32),
}

/// The fixed part of the `queue` file, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) seq: u64,
    pub(crate) capacity: u32,
    pub(crate) devices: u32,
    pub(crate) fingerprint: u64,
    pub(crate) devices_len: u32,
}

/// The `queue` file's header cannot be read as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damaged;

/// Reads the header from the first bytes of the `queue` file: `Ok(None)` for an empty (new)
/// file. Never panics, whatever the bytes.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<Option<Header>, Damaged> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let u64_at = |i: usize| -> Option<u64> {
        bytes
            .get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let u32_at = |i: usize| -> Option<u32> {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let seq = u64_at(0).ok_or(Damaged)?;
    let capacity = u64_at(8).ok_or(Damaged)?;
    if bytes.get(16..24) != Some(&MAGIC[..]) {
        // The header of earlier versions: sequence and capacity, no devices.
        if !(1..=V1_MAX_CAPACITY).contains(&capacity) {
            return Err(Damaged);
        }
        return Ok(Some(Header {
            seq,
            capacity: capacity as u32,
            devices: 0,
            fingerprint: fnv1a(b""),
            devices_len: 0,
        }));
    }
    let devices = u32_at(24).ok_or(Damaged)?;
    let lanes = u32_at(28).ok_or(Damaged)?;
    let fingerprint = u64_at(32).ok_or(Damaged)?;
    let devices_len = u32_at(40).ok_or(Damaged)?;
    let capacity = u32::try_from(capacity)
        .ok()
        .filter(|c| (1..=super::lock::MAX_CAPACITY).contains(c))
        .ok_or(Damaged)?;
    let slots = (devices as u64).max(1);
    let ok = devices as usize <= MAX_DEVICES
        && devices_len as usize <= DEVICES_MAX_LEN
        && u64::from(lanes) == (u64::from(capacity) * slots).min(u64::from(MAX_HOLDERS))
        && bytes
            .get(44..HEADER_LEN)
            .is_some_and(|z| z.iter().all(|b| *b == 0));
    if !ok {
        return Err(Damaged);
    }
    Ok(Some(Header {
        seq,
        capacity,
        devices,
        fingerprint,
        devices_len,
    }))
}

/// The whole declaration from a header and the device list text that follows the ledger.
pub(crate) fn decode_declaration(h: &Header, text: &[u8]) -> Result<Declaration, Damaged> {
    if text.len() != h.devices_len as usize || fnv1a(text) != h.fingerprint {
        return Err(Damaged);
    }
    let text = std::str::from_utf8(text).map_err(|_| Damaged)?;
    let devices: Vec<String> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').map(str::to_owned).collect()
    };
    if devices.len() != h.devices as usize || check_device_ids(&devices).is_err() {
        return Err(Damaged);
    }
    Ok(Declaration {
        capacity: h.capacity,
        devices,
    })
}

/// Why a device list cannot be declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BadDevices {
    TooMany(usize),
    Id(String),
    Duplicate(String),
}

/// Device ids are what `CUDA_VISIBLE_DEVICES` takes: an index, a UUID (`GPU-…`, `MIG-…`).
/// 1 to 64 letters, digits, `-`, `_`, `.`, `:` or `/`; unique; at most 64 of them.
pub(crate) fn check_device_ids(ids: &[String]) -> Result<(), BadDevices> {
    if ids.len() > MAX_DEVICES {
        return Err(BadDevices::TooMany(ids.len()));
    }
    for (i, id) in ids.iter().enumerate() {
        let ok = !id.is_empty()
            && id.len() <= MAX_DEVICE_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
        if !ok {
            return Err(BadDevices::Id(id.clone()));
        }
        if ids[..i].contains(id) {
            return Err(BadDevices::Duplicate(id.clone()));
        }
    }
    Ok(())
}

/// One holder's share: `units` on each device of `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) units: u32,
    pub(crate) mask: u64,
}

/// A ledger entry as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// All zero: nobody (the holder zeroes it before unlocking its lane).
    Free,
    /// A well-formed share within the declaration.
    Held(Entry),
    /// Anything else.
    Garbage,
}

fn check_word(units: u32, mask: u64) -> u32 {
    (units ^ mask as u32 ^ (mask >> 32) as u32).rotate_left(7) ^ 0x5247_4c31
}

impl Entry {
    pub(crate) fn encode(self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[..4].copy_from_slice(&self.units.to_le_bytes());
        b[4..8].copy_from_slice(&check_word(self.units, self.mask).to_le_bytes());
        b[8..].copy_from_slice(&self.mask.to_le_bytes());
        b
    }
}

/// Reads one entry (missing bytes read as zero). Never panics.
pub(crate) fn decode_entry(bytes: &[u8], decl: &Declaration) -> Slot {
    let mut b = [0u8; ENTRY_LEN];
    let n = bytes.len().min(ENTRY_LEN);
    b[..n].copy_from_slice(&bytes[..n]);
    if b == [0u8; ENTRY_LEN] {
        return Slot::Free;
    }
    let units = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let check = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    let mask = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
    let valid = check == check_word(units, mask)
        && (1..=decl.capacity).contains(&units)
        && mask != 0
        && mask & !decl.all_mask() == 0;
    if valid {
        Slot::Held(Entry { units, mask })
    } else {
        Slot::Garbage
    }
}

/// Who uses what, as far as a taker may believe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Units in use per device slot (never above the capacity).
    pub(crate) used: Vec<u32>,
    /// Locked lanes whose holders are counted: waiting on them is waiting for units.
    pub(crate) locked: Vec<u32>,
    /// Lanes that look free (a zero entry, or a stale one): candidates to take.
    pub(crate) free: Vec<u32>,
    /// Lanes with a non-zero entry but no lock: their holder is gone; zero them.
    pub(crate) stale: Vec<u32>,
}

/// Accounts for the ledger (`lanes` entries; missing bytes read as zero). Only lanes with a
/// non-zero entry are probed (`locked(lane)`): an unlocked one is stale, a locked one counts its
/// entry, or, if the entry is garbage, the whole gate (its holder's share is unknown, so it
/// is assumed to be everything: garbage can delay others, never let them exceed the budget).
/// A zero entry is not probed: its lane is free or its holder is releasing.
pub(crate) fn account<E>(
    decl: &Declaration,
    lanes: u32,
    ledger: &[u8],
    mut locked: impl FnMut(u32) -> Result<bool, E>,
) -> Result<Usage, E> {
    let mut u = Usage {
        used: vec![0; decl.device_slots()],
        ..Usage::default()
    };
    for lane in 0..lanes {
        let at = lane as usize * ENTRY_LEN;
        let bytes = ledger
            .get(at..)
            .map_or(&[][..], |b| &b[..b.len().min(ENTRY_LEN)]);
        let share = match decode_entry(bytes, decl) {
            Slot::Free => {
                u.free.push(lane);
                continue;
            }
            Slot::Held(e) => e,
            Slot::Garbage => Entry {
                units: decl.capacity,
                mask: decl.all_mask(),
            },
        };
        if !locked(lane)? {
            u.stale.push(lane);
            u.free.push(lane);
            continue;
        }
        u.locked.push(lane);
        for (d, used) in u.used.iter_mut().enumerate() {
            if share.mask & (1 << d) != 0 {
                *used = used.saturating_add(share.units).min(decl.capacity);
            }
        }
    }
    Ok(u)
}

/// Where a request of `shape` goes given `usage`: its entry, or `None` if it does not fit now.
/// Units go to the device with the most free units (the lowest such), spreading work across
/// devices; whole devices are the lowest free ones.
pub(crate) fn place(decl: &Declaration, usage: &Usage, shape: Shape) -> Option<Entry> {
    let free = |d: usize| decl.capacity - usage.used[d];
    match shape {
        Shape::Units(n) => (0..decl.device_slots())
            .filter(|&d| free(d) >= n)
            .min_by_key(|&d| (Reverse(free(d)), d))
            .map(|d| Entry {
                units: n,
                mask: 1 << d,
            }),
        Shape::Devices(k) => {
            let idle: Vec<usize> = (0..decl.device_slots())
                .filter(|&d| usage.used[d] == 0)
                .take(k as usize)
                .collect();
            (idle.len() == k as usize).then(|| Entry {
                units: decl.capacity,
                mask: idle.iter().fold(0, |m, d| m | 1 << d),
            })
        }
    }
}

fn mask_below(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decl(capacity: u32, devices: usize) -> Declaration {
        Declaration {
            capacity,
            devices: (0..devices).map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn header_round_trips_and_reads_the_old_16_byte_header() {
        let d = decl(80, 4);
        let (h, text) = d.encode(17);
        let head = decode_header(&h).unwrap().unwrap();
        assert_eq!((head.seq, head.capacity, head.devices), (17, 80, 4));
        assert!(d.matches(&head));
        assert_eq!(decode_declaration(&head, &text).unwrap(), d);
        assert!(!decl(80, 3).matches(&head) && !decl(40, 4).matches(&head));

        let mut old = [0u8; 16];
        old[..8].copy_from_slice(&5u64.to_le_bytes());
        old[8..].copy_from_slice(&3u64.to_le_bytes());
        let head = decode_header(&old).unwrap().unwrap();
        assert_eq!((head.seq, head.capacity, head.devices), (5, 3, 0));
        assert!(decl(3, 0).matches(&head));
        assert_eq!(decode_header(&[]), Ok(None));
        assert_eq!(decode_header(&[1, 2, 3]), Err(Damaged));
    }

    #[test]
    fn shapes() {
        let d = decl(80, 4);
        assert_eq!(d.shape(20), Some(Shape::Units(20)));
        assert_eq!(d.shape(80), Some(Shape::Units(80)));
        assert_eq!(d.shape(160), Some(Shape::Devices(2)));
        assert_eq!(d.shape(100), None);
        assert_eq!(d.shape(400), None);
        let whole = decl(1, 4);
        assert_eq!(whole.shape(1), Some(Shape::Units(1)));
        assert_eq!(whole.shape(3), Some(Shape::Devices(3)));
        assert_eq!(decl(80, 0).shape(81), None);
        assert_eq!(decl(80, 0).lanes(), 64);
        assert_eq!(decl(1, 0).lanes(), 1);
        assert_eq!(decl(2, 3).lanes(), 6);
    }

    #[test]
    fn units_spread_to_the_freest_device_and_whole_devices_take_idle_ones() {
        let d = decl(80, 3);
        let usage = Usage {
            used: vec![20, 0, 70],
            ..Usage::default()
        };
        assert_eq!(
            place(&d, &usage, Shape::Units(30)),
            Some(Entry { units: 30, mask: 2 })
        );
        assert_eq!(
            place(&d, &usage, Shape::Units(70)),
            Some(Entry { units: 70, mask: 2 })
        );
        assert_eq!(place(&d, &usage, Shape::Units(81)), None);
        assert_eq!(
            place(&d, &usage, Shape::Devices(1)),
            Some(Entry { units: 80, mask: 2 })
        );
        assert_eq!(place(&d, &usage, Shape::Devices(2)), None);
    }

    #[test]
    fn garbage_on_a_locked_lane_counts_as_the_whole_gate() {
        let d = decl(10, 2);
        let mut ledger = vec![0u8; 3 * ENTRY_LEN];
        ledger[..ENTRY_LEN].copy_from_slice(&Entry { units: 4, mask: 1 }.encode());
        ledger[ENTRY_LEN..2 * ENTRY_LEN].fill(0xAB);
        let all_locked = account(&d, 3, &ledger, |_| Ok::<_, ()>(true)).unwrap();
        assert_eq!(all_locked.used, vec![10, 10]);
        assert_eq!((all_locked.locked, all_locked.free), (vec![0, 1], vec![2]));
        let none_locked = account(&d, 3, &ledger, |_| Ok::<_, ()>(false)).unwrap();
        assert_eq!(none_locked.used, vec![0, 0]);
        assert_eq!(none_locked.stale, vec![0, 1]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn header_and_entry_decoding_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_header(&bytes);
            if let Ok(Some(h)) = decode_header(&bytes) {
                let _ = decode_declaration(&h, &bytes);
            }
            let d = decl(80, 2);
            let _ = decode_entry(&bytes, &d);
            let _ = account(&d, 64, &bytes, |l| Ok::<_, ()>(l % 2 == 0));
        }

        /// Whatever garbage sits in the ledger (except a forged all-zero entry over a live
        /// holder's, or bytes that happen to be a well-formed entry), accounting never believes
        /// fewer units in use than the true holders hold, so placement never exceeds the budget.
        #[test]
        fn garbage_in_the_ledger_never_lets_a_placement_exceed_the_budget(
            capacity in 1u32..100,
            devices in 0usize..5,
            holders in proptest::collection::vec((1u32..100, 0usize..5, any::<bool>()), 0..8),
            garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 16), 8),
            spoil in proptest::collection::vec(any::<bool>(), 8),
            ask in 1u32..400,
        ) {
            let d = decl(capacity, devices);
            let slots = d.device_slots();
            let lanes = d.lanes().min(8);
            // The truth: holders on lanes 0.., each within what is left on its device.
            let mut truth = vec![0u32; slots];
            let mut ledger = vec![0u8; lanes as usize * ENTRY_LEN];
            let mut is_locked = vec![false; lanes as usize];
            for (lane, (units, dev, whole)) in holders.iter().enumerate().take(lanes as usize) {
                let dev = dev % slots;
                let e = if *whole && truth.iter().all(|u| *u == 0) {
                    Entry { units: capacity, mask: d.all_mask() }
                } else {
                    let units = (*units).min(capacity - truth[dev]);
                    if units == 0 { continue; }
                    Entry { units, mask: 1 << dev }
                };
                for (t, slot) in truth.iter_mut().enumerate() {
                    if e.mask & (1 << t) != 0 { *slot += e.units; }
                }
                ledger[lane * ENTRY_LEN..(lane + 1) * ENTRY_LEN].copy_from_slice(&e.encode());
                is_locked[lane] = true;
            }
            for lane in 0..lanes as usize {
                let g = &garbage[lane];
                let forged_free = g.iter().all(|b| *b == 0);
                let looks_valid = matches!(decode_entry(g, &d), Slot::Held(_));
                if spoil[lane] && !forged_free && !looks_valid {
                    ledger[lane * ENTRY_LEN..(lane + 1) * ENTRY_LEN].copy_from_slice(g);
                }
            }
            let usage = account(&d, lanes, &ledger, |l| Ok::<_, ()>(is_locked[l as usize])).unwrap();
            for (dev, t) in truth.iter().enumerate() {
                prop_assert!(usage.used[dev] >= *t, "device {dev}: believed {} < true {t}", usage.used[dev]);
            }
            if let Some(shape) = d.shape(ask) {
                if let Some(e) = place(&d, &usage, shape) {
                    for (dev, t) in truth.iter().enumerate() {
                        if e.mask & (1 << dev) != 0 {
                            prop_assert!(t + e.units <= capacity, "device {dev}: {t} + {} > {capacity}", e.units);
                        }
                    }
                }
            }
        }

        #[test]
        fn entries_round_trip(units in 1u32..1000, bits in 1u64..16) {
            let d = decl(1000, 4);
            let e = Entry { units, mask: bits };
            prop_assert_eq!(decode_entry(&e.encode(), &d), Slot::Held(e));
        }
    }
}

//! What one replica of a Deployment or StatefulSet asks the scheduler for (docs/reference.md §8): the pod's
//! effective `cpu` and `memory` request, read from the pod template while the list is parsed.
//!
//! Only `spec.containers[].resources.requests`, `spec.initContainers[].resources.requests` and
//! `spec.initContainers[].restartPolicy` are read; serde skips everything else of the template
//! without building it (derived structs ignore unknown fields through `IgnoredAny`), so a
//! listed Deployment costs a few numbers, not its pod spec.
//!
//! The effective request is Kubernetes' own rule (`resourcehelper.PodRequests`): the larger of
//! the sum over `containers` and the largest `initContainers` entry. A native sidecar (an init
//! container with `restartPolicy: Always`, GA in 1.33) runs for the pod's whole life, so it adds
//! to the sum and to every init container started after it; without sidecars this is exactly
//! `max(sum(containers), max(initContainers))`.
//!
//! A request that is absent or unreadable counts 0 and is counted in `without_cpu` /
//! `without_memory` when its container runs for the pod's whole life (a regular container or a
//! sidecar): there the gap makes the figure low. A one-shot init container without requests is
//! common and only matters while it runs, so it is counted 0 without a flag.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Millicores in one vCPU.
pub const MILLICORES_PER_VCPU: f64 = 1000.0;
/// Bytes in one GiB.
pub const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The effective request of one replica, and how complete the template's requests were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PodRequest {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    /// Containers that run for the pod's whole life: `containers` and sidecar init containers.
    pub containers: u16,
    /// Of those, how many have no readable `cpu` request (counted 0).
    pub without_cpu: u16,
    /// Of those, how many have no readable `memory` request (counted 0).
    pub without_memory: u16,
}

impl PodRequest {
    /// Every long-running container requests both cpu and memory.
    pub fn is_complete(&self) -> bool {
        self.containers > 0 && self.without_cpu == 0 && self.without_memory == 0
    }

    /// No long-running container requests anything: a replica frees 0 by this measure.
    pub fn has_no_requests(&self) -> bool {
        self.containers == self.without_cpu && self.containers == self.without_memory
    }

    /// What the plan should say about a template whose requests are incomplete: `no requests`,
    /// or e.g. `no cpu request on 1 of 3 containers`. None when complete.
    pub fn shortfall(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        if self.has_no_requests() {
            return Some("no requests".to_string());
        }
        let of = self.containers;
        let missing: Vec<String> = [("cpu", self.without_cpu), ("memory", self.without_memory)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("no {what} request on {n} of {of} containers"))
            .collect();
        Some(missing.join(", "))
    }
}

/// An amount of requested resources: what some replicas ask the scheduler for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
}

impl Requested {
    /// `replicas` replicas of a pod requesting `per_replica` (saturating).
    pub fn of(per_replica: &PodRequest, replicas: u64) -> Self {
        Requested {
            cpu_millicores: per_replica.cpu_millicores.saturating_mul(replicas),
            memory_bytes: per_replica.memory_bytes.saturating_mul(replicas),
        }
    }

    /// `n` times this amount (saturating).
    pub fn times(self, n: u64) -> Self {
        Requested {
            cpu_millicores: self.cpu_millicores.saturating_mul(n),
            memory_bytes: self.memory_bytes.saturating_mul(n),
        }
    }

    pub fn vcpu(&self) -> f64 {
        self.cpu_millicores as f64 / MILLICORES_PER_VCPU
    }

    pub fn gib(&self) -> f64 {
        self.memory_bytes as f64 / BYTES_PER_GIB
    }

    pub fn is_zero(&self) -> bool {
        self.cpu_millicores == 0 && self.memory_bytes == 0
    }
}

impl std::ops::Add for Requested {
    type Output = Requested;
    fn add(self, other: Requested) -> Requested {
        Requested {
            cpu_millicores: self.cpu_millicores.saturating_add(other.cpu_millicores),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }
}

impl std::ops::AddAssign for Requested {
    fn add_assign(&mut self, other: Requested) {
        *self = *self + other;
    }
}

impl std::iter::Sum for Requested {
    fn sum<I: Iterator<Item = Requested>>(iter: I) -> Requested {
        iter.fold(Requested::default(), |a, b| a + b)
    }
}

/// Serialized with both the exact integers and the human units:
/// `{"cpu_millicores": 4400, "memory_bytes": 5905580032, "vcpu": 4.4, "gib": 5.5}`.
impl Serialize for Requested {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Requested", 4)?;
        st.serialize_field("cpu_millicores", &self.cpu_millicores)?;
        st.serialize_field("memory_bytes", &self.memory_bytes)?;
        st.serialize_field("vcpu", &self.vcpu())?;
        st.serialize_field("gib", &self.gib())?;
        st.end()
    }
}

/// Why a quantity does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Kubernetes quantity: {0}")]
pub struct InvalidQuantity(&'static str);

/// Millicores in a `cpu` quantity, rounded up as Kubernetes' `MilliValue` does (`1n` → 1).
pub fn cpu_millicores(quantity: &str) -> Result<u64, InvalidQuantity> {
    scaled_up(quantity, 3)
}

/// Bytes in a `memory` quantity, rounded up as Kubernetes' `Value` does.
pub fn memory_bytes(quantity: &str) -> Result<u64, InvalidQuantity> {
    scaled_up(quantity, 0)
}

/// Significant digits kept exactly; further digits only round up. 10^18 < 2^60, so the kept
/// mantissa times the largest binary suffix (2^60) fits in a u128.
const KEPT_DIGITS: u32 = 18;
/// Exponents beyond this make any non-zero value saturate (or round up to the smallest unit).
const EXPONENT_LIMIT: i64 = 1000;

/// `quantity × 10^scale`, rounded up to a whole number, saturating at `u64::MAX`.
///
/// Grammar (k8s.io/apimachinery `resource.Quantity`): `[+-] number suffix`, number = `digits`,
/// `digits.digits`, `digits.` or `.digits`; suffix = one of `n u m "" k M G T P E`, one of
/// `Ki Mi Gi Ti Pi Ei`, or `e`/`E` followed by a signed integer. A negative non-zero value is
/// refused (no request can be negative).
fn scaled_up(quantity: &str, scale: i64) -> Result<u64, InvalidQuantity> {
    let bytes = quantity.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        Some(_) => false,
        None => return Err(InvalidQuantity("empty")),
    };
    // Mantissa: value ≈ (mantissa + something below one unit when `dropped`) × 10^exp10.
    let (mut mantissa, mut exp10, mut kept, mut dropped, mut digits) = (0u128, 0i64, 0u32, false, 0usize);
    let mut seen_point = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'0'..=b'9' => {
                let d = u128::from(b - b'0');
                digits += 1;
                if kept < KEPT_DIGITS && (mantissa > 0 || d > 0) {
                    mantissa = mantissa * 10 + d;
                    kept += 1;
                    if seen_point {
                        exp10 -= 1;
                    }
                } else if mantissa == 0 {
                    // A leading zero: only its position counts.
                    if seen_point {
                        exp10 -= 1;
                    }
                } else {
                    dropped |= d > 0;
                    if !seen_point {
                        exp10 += 1;
                    }
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(InvalidQuantity("no digits"));
    }
    let (suffix_exp10, exp2) = suffix(&quantity[i..])?;
    if mantissa == 0 && !dropped {
        return Ok(0);
    }
    if negative {
        return Err(InvalidQuantity("negative"));
    }
    let exponent = (exp10 + suffix_exp10 + scale).clamp(-EXPONENT_LIMIT * 4, EXPONENT_LIMIT * 4);
    let mut value = mantissa << exp2; // < 2^60 × 2^60
    let mut inexact = dropped;
    if exponent >= 0 {
        for _ in 0..exponent {
            match value.checked_mul(10) {
                Some(v) => value = v,
                None => return Ok(u64::MAX),
            }
        }
    } else {
        for _ in 0..exponent.unsigned_abs() {
            if value == 0 {
                break;
            }
            inexact |= value % 10 != 0;
            value /= 10;
        }
    }
    let value = value.saturating_add(u128::from(inexact));
    Ok(u64::try_from(value).unwrap_or(u64::MAX))
}

/// The suffix's power of ten and power of two.
fn suffix(s: &str) -> Result<(i64, u32), InvalidQuantity> {
    let decimal = |e: i64| Ok((e, 0));
    match s {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Ok((0, 10)),
        "Mi" => Ok((0, 20)),
        "Gi" => Ok((0, 30)),
        "Ti" => Ok((0, 40)),
        "Pi" => Ok((0, 50)),
        "Ei" => Ok((0, 60)),
        _ => {
            let exponent = s.strip_prefix(['e', 'E']).ok_or(InvalidQuantity("unknown suffix"))?;
            let (negative, digits) = match exponent.as_bytes().first() {
                Some(b'-') => (true, &exponent[1..]),
                Some(b'+') => (false, &exponent[1..]),
                _ => (false, exponent),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidQuantity("bad exponent"));
            }
            // Saturates: any exponent past the limit behaves like the limit.
            let magnitude = digits
                .bytes()
                .fold(0i64, |acc, b| (acc * 10 + i64::from(b - b'0')).min(EXPONENT_LIMIT));
            decimal(if negative { -magnitude } else { magnitude })
        }
    }
}

// ---- Parsing the pod template ----------------------------------------------------------------

/// Reads a pod template (`spec.template` of a Deployment or StatefulSet) as its [`PodRequest`].
pub fn from_pod_template<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PodRequest>, D::Error> {
    let template = Option::<PodTemplate>::deserialize(d)?;
    Ok(template.map(|t| t.spec.unwrap_or_default().effective()))
}

#[derive(Deserialize)]
struct PodTemplate {
    #[serde(default)]
    spec: Option<PodSpec>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Option<Vec<Container>>,
    #[serde(default)]
    init_containers: Option<Vec<Container>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    #[serde(default)]
    resources: Option<Resources>,
    /// `restartPolicy: Always` on an init container makes it a sidecar.
    #[serde(default, deserialize_with = "is_always")]
    restart_policy: bool,
}

#[derive(Deserialize)]
struct Resources {
    #[serde(default)]
    requests: Option<Requests>,
}

/// `cpu` in millicores and `memory` in bytes; None when absent or unreadable.
#[derive(Default)]
struct Requests {
    cpu: Option<u64>,
    memory: Option<u64>,
}

impl Container {
    fn requests(&self) -> (Option<u64>, Option<u64>) {
        match self.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            Some(r) => (r.cpu, r.memory),
            None => (None, None),
        }
    }
}

impl PodSpec {
    fn effective(self) -> PodRequest {
        let mut out = PodRequest::default();
        let long_running = |out: &mut PodRequest, cpu: Option<u64>, memory: Option<u64>| {
            out.containers = out.containers.saturating_add(1);
            out.without_cpu = out.without_cpu.saturating_add(u16::from(cpu.is_none()));
            out.without_memory = out.without_memory.saturating_add(u16::from(memory.is_none()));
        };
        // Sidecars started so far, and the largest one-shot init container's need.
        let (mut sidecar_cpu, mut sidecar_memory, mut init_cpu, mut init_memory) = (0u64, 0u64, 0u64, 0u64);
        for c in self.init_containers.iter().flatten() {
            let (cpu, memory) = c.requests();
            let (cpu_m, memory_b) = (cpu.unwrap_or(0), memory.unwrap_or(0));
            if c.restart_policy {
                long_running(&mut out, cpu, memory);
                sidecar_cpu = sidecar_cpu.saturating_add(cpu_m);
                sidecar_memory = sidecar_memory.saturating_add(memory_b);
            } else {
                init_cpu = init_cpu.max(cpu_m.saturating_add(sidecar_cpu));
                init_memory = init_memory.max(memory_b.saturating_add(sidecar_memory));
            }
        }
        let (mut sum_cpu, mut sum_memory) = (sidecar_cpu, sidecar_memory);
        for c in self.containers.iter().flatten() {
            let (cpu, memory) = c.requests();
            long_running(&mut out, cpu, memory);
            sum_cpu = sum_cpu.saturating_add(cpu.unwrap_or(0));
            sum_memory = sum_memory.saturating_add(memory.unwrap_or(0));
        }
        out.cpu_millicores = sum_cpu.max(init_cpu);
        out.memory_bytes = sum_memory.max(init_memory);
        out
    }
}

fn is_always<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<Cow<'de, str>>::deserialize(d)?.is_some_and(|p| p == "Always"))
}

impl<'de> Deserialize<'de> for Requests {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RequestsVisitor;
        impl<'de> Visitor<'de> for RequestsVisitor {
            type Value = Requests;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of resource quantities")
            }
            fn visit_unit<E>(self) -> Result<Requests, E> {
                Ok(Requests::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Requests, A::Error> {
                let mut out = Requests::default();
                while let Some(key) = m.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "cpu" => out.cpu = m.next_value::<QuantityText>()?.parse(cpu_millicores),
                        "memory" => out.memory = m.next_value::<QuantityText>()?.parse(memory_bytes),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(RequestsVisitor)
    }
}

/// A quantity as written: normally a string; a number is accepted; anything else is unreadable
/// (counted 0 and flagged, never an error that would fail the whole list).
struct QuantityText(Option<String>);

impl QuantityText {
    fn parse(self, f: fn(&str) -> Result<u64, InvalidQuantity>) -> Option<u64> {
        self.0.and_then(|s| f(&s).ok())
    }
}

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = QuantityText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quantity")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.is_finite().then(|| v.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<QuantityText, E> {
                Ok(QuantityText(None))
            }
            fn visit_unit<E>(self) -> Result<QuantityText, E> {
                Ok(QuantityText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<QuantityText, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(QuantityText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<QuantityText, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(QuantityText(None))
            }
        }
        d.deserialize_any(Text)
    }
}

#[cfg(test)]
mod tests;

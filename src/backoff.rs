//! The one backoff formula every retry loop uses (the Kubernetes API's through
//! `scaling::retry::RetryPolicy`, DynamoDB's through [`DYNAMODB`]): exponential, capped, with
//! jitter over the upper half of the ceiling, so retries spread out without bunching at zero.

use std::time::Duration;

/// Exponential backoff: the ceiling is `base · 2^attempt`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// DynamoDB's retries (BatchWriteItem, BatchGetItem, the windows table's transactions): 50 ms,
/// doubling, capped at 1.6 s.
pub const DYNAMODB: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_millis(1600),
};

impl Backoff {
    /// Delay before retry number `attempt` (0-based): uniform in `[ceiling / 2, ceiling]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_and_stay_within_the_upper_half_of_the_capped_ceiling() {
        let cases = [
            (DYNAMODB, 0, 50),
            (DYNAMODB, 1, 100),
            (DYNAMODB, 5, 1600),
            (DYNAMODB, 6, 1600),
            (DYNAMODB, 40, 1600),
            (
                Backoff {
                    base: Duration::from_millis(200),
                    max: Duration::from_secs(5),
                },
                3,
                1600,
            ),
        ];
        for (backoff, attempt, ceiling_ms) in cases {
            let ceiling = Duration::from_millis(ceiling_ms);
            for _ in 0..50 {
                let d = backoff.delay(attempt);
                assert!(d <= ceiling && d >= ceiling / 2, "{backoff:?} attempt {attempt}: {d:?}");
            }
        }
    }
}

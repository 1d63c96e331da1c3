//! Request fields into domain values, each refusal an `InvalidArgument`
//! that says which field and why.

use mnemo_domain::OwnerId;
use time::OffsetDateTime;
use tonic::Status;
use uuid::Uuid;

use crate::auth::Caller;

/// A required UUID field.
pub fn uuid(raw: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Status::invalid_argument(format!("{field} must be a UUID, got '{raw}'")))
}

/// An optional UUID field: empty means "choose one" (a UUIDv7).
pub fn uuid_or_new(raw: &str, field: &str) -> Result<Uuid, Status> {
    if raw.trim().is_empty() {
        Ok(Uuid::now_v7())
    } else {
        uuid(raw, field)
    }
}

/// An optional UUID field: empty means none.
pub fn optional_uuid(raw: &str, field: &str) -> Result<Option<Uuid>, Status> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        uuid(raw, field).map(Some)
    }
}

/// Instants are kept to the microsecond (PostgreSQL's precision), so the
/// read model and a replay from events hold exactly the same values.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.unix_timestamp_nanos().div_euclid(1000) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(micros).unwrap_or(t)
}

/// An optional instant (default: now), within years 1970..=9999.
pub fn instant(t: Option<&prost_types::Timestamp>, field: &str) -> Result<OffsetDateTime, Status> {
    let Some(t) = t else {
        return Ok(to_micros(OffsetDateTime::now_utc()));
    };
    instant_required(t, field)
}

/// An instant given in a request.
pub fn instant_required(t: &prost_types::Timestamp, field: &str) -> Result<OffsetDateTime, Status> {
    let bad = || Status::invalid_argument(format!("{field} is not a valid instant"));
    if !(0..1_000_000_000).contains(&t.nanos) || t.seconds < 0 {
        return Err(bad());
    }
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    if at.year() > 9999 {
        return Err(bad());
    }
    Ok(to_micros(at))
}

/// The owner a read or replay is about: the caller, or — for admins only —
/// the one named.
pub fn target_owner(who: &Caller, requested: &str) -> Result<OwnerId, Status> {
    let requested = requested.trim();
    if requested.is_empty() || requested == who.owner.as_str() {
        return Ok(who.owner.clone());
    }
    if !who.admin {
        return Err(Status::permission_denied(
            "only the owner themself or an admin token may read another owner's learning history",
        ));
    }
    OwnerId::new(requested).map_err(|e| Status::invalid_argument(format!("owner: {e}")))
}

/// A rating 1..=4.
pub fn rating(raw: u32) -> Result<u8, Status> {
    match raw {
        1..=4 => Ok(raw as u8),
        _ => Err(Status::invalid_argument(format!(
            "rating must be 1 (again), 2 (hard), 3 (good) or 4 (easy), got {raw}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(owner: &str, admin: bool) -> Caller {
        Caller {
            owner: OwnerId::new(owner).unwrap(),
            admin,
            issued_at: 0,
        }
    }

    #[test]
    fn only_admins_name_another_owner() {
        assert_eq!(target_owner(&caller("a", false), "").unwrap().as_str(), "a");
        assert_eq!(
            target_owner(&caller("a", false), "a").unwrap().as_str(),
            "a"
        );
        let denied = target_owner(&caller("a", false), "b").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(target_owner(&caller("a", true), "b").unwrap().as_str(), "b");
    }

    #[test]
    fn instants_keep_microseconds_and_refuse_nonsense() {
        let t = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 123_456_789,
        };
        assert_eq!(
            instant_required(&t, "at").unwrap().nanosecond(),
            123_456_000
        );
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(
            instant_required(&bad, "at").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(rating(0).is_err() && rating(5).is_err() && rating(4).is_ok());
    }
}

use crate::proto::v1::event::Kind;

/// The kind of an event, stored as one byte in the entry envelope so indexes
/// and filters never need to decode a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    VersionRegistered = 1,
    EvalRecorded = 2,
    ApprovalRecorded = 3,
    DeploymentRecorded = 4,
    IncidentOpened = 5,
    IncidentResolved = 6,
    FeedbackRecorded = 7,
    PolicySet = 8,
    PrincipalRolesSet = 9,
    TokenIssued = 10,
    TokenRevoked = 11,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::VersionRegistered,
        EventKind::EvalRecorded,
        EventKind::ApprovalRecorded,
        EventKind::DeploymentRecorded,
        EventKind::IncidentOpened,
        EventKind::IncidentResolved,
        EventKind::FeedbackRecorded,
        EventKind::PolicySet,
        EventKind::PrincipalRolesSet,
        EventKind::TokenIssued,
        EventKind::TokenRevoked,
    ];

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(byte: u8) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_u8() == byte)
    }

    /// Roles and tokens: written only through the Access service.
    pub fn is_access(self) -> bool {
        matches!(
            self,
            EventKind::PrincipalRolesSet | EventKind::TokenIssued | EventKind::TokenRevoked
        )
    }

    /// The kind of a decoded event variant.
    pub fn of(kind: &Kind) -> EventKind {
        match kind {
            Kind::VersionRegistered(_) => EventKind::VersionRegistered,
            Kind::EvalRecorded(_) => EventKind::EvalRecorded,
            Kind::ApprovalRecorded(_) => EventKind::ApprovalRecorded,
            Kind::DeploymentRecorded(_) => EventKind::DeploymentRecorded,
            Kind::IncidentOpened(_) => EventKind::IncidentOpened,
            Kind::IncidentResolved(_) => EventKind::IncidentResolved,
            Kind::FeedbackRecorded(_) => EventKind::FeedbackRecorded,
            Kind::PolicySet(_) => EventKind::PolicySet,
            Kind::PrincipalRolesSet(_) => EventKind::PrincipalRolesSet,
            Kind::TokenIssued(_) => EventKind::TokenIssued,
            Kind::TokenRevoked(_) => EventKind::TokenRevoked,
        }
    }

    /// The oneof field name, used in field paths of error messages.
    pub fn field_name(self) -> &'static str {
        match self {
            EventKind::VersionRegistered => "version_registered",
            EventKind::EvalRecorded => "eval_recorded",
            EventKind::ApprovalRecorded => "approval_recorded",
            EventKind::DeploymentRecorded => "deployment_recorded",
            EventKind::IncidentOpened => "incident_opened",
            EventKind::IncidentResolved => "incident_resolved",
            EventKind::FeedbackRecorded => "feedback_recorded",
            EventKind::PolicySet => "policy_set",
            EventKind::PrincipalRolesSet => "principal_roles_set",
            EventKind::TokenIssued => "token_issued",
            EventKind::TokenRevoked => "token_revoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_round_trips_and_unknown_bytes_are_rejected() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_u8(kind.as_u8()), Some(kind));
        }
        assert_eq!(EventKind::from_u8(0), None);
        assert_eq!(EventKind::from_u8(12), None);
    }
}

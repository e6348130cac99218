//! The `govledger.v1.Governance` service: gates, state, history.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::{
    Auth,
    convert::{micros, timestamp},
};
use crate::{
    Ledger, LedgerError,
    auth::Action,
    governance::{
        self, EnvironmentState, GateDecision, IncidentState, State, SubjectState, VersionState,
    },
    proto::v1::{self, r#as_of::Point, governance_server},
};

pub use governance_server::GovernanceServer;

/// Largest ListSubjects page.
const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;

pub struct GovernanceService {
    ledger: Ledger,
    auth: Auth,
}

impl GovernanceService {
    pub fn new(ledger: Ledger, auth: Auth) -> GovernanceService {
        GovernanceService { ledger, auth }
    }

    /// The sequence an `AsOf` names (the head when unset).
    fn point(&self, as_of: Option<&v1::AsOf>) -> Result<u64, LedgerError> {
        let head = self.ledger.head().sequence;
        Ok(match as_of.and_then(|a| a.point.as_ref()) {
            None => head,
            Some(Point::Sequence(s)) => (*s).min(head),
            Some(Point::Time(t)) => self.ledger.sequence_at(micros(t, "as_of.time")?),
        })
    }

    /// The state as of `point`, exact for `subject`. The current state is a
    /// cheap copy; a past one replays entries, off the async threads.
    async fn state_at(&self, subject: &str, point: u64) -> Result<State, Status> {
        let current = self.ledger.state();
        if point >= current.sequence() {
            return Ok(current);
        }
        let ledger = self.ledger.clone();
        let subject = subject.to_owned();
        Ok(
            tokio::task::spawn_blocking(move || ledger.state_as_of(&subject, point))
                .await
                .map_err(|e| Status::internal(e.to_string()))??,
        )
    }
}

fn required(value: &str, field: &str) -> Result<(), LedgerError> {
    if value.is_empty() {
        Err(LedgerError::invalid(field, "is required"))
    } else {
        Ok(())
    }
}

/// A subject unknown at `point`; a moment asked for is named as it was
/// asked (entry 0 would mean nothing to the caller).
fn not_found(subject: &str, point: u64, as_of: Option<&v1::AsOf>) -> Status {
    let moment = match as_of.and_then(|a| a.point.as_ref()) {
        Some(Point::Time(t)) => chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        _ => None,
    };
    let message = match moment {
        Some(moment) if point == 0 => {
            format!(
                "subject {subject:?} has no entries at or before {moment}: the ledger had none then"
            )
        }
        Some(moment) => format!(
            "subject {subject:?} has no entries at or before {moment} (the last entry by then is {point})"
        ),
        None => format!("subject {subject:?} has no entries at or before entry {point}"),
    };
    LedgerError::NotFound(message).into()
}

pub fn gate_decision(decision: GateDecision, as_of_sequence: u64) -> v1::GateDecision {
    v1::GateDecision {
        allow: decision.allow,
        reasons: decision.reasons.into_iter().map(gate_reason).collect(),
        policy_sequence: decision.policy_sequence.unwrap_or(0),
        as_of_sequence,
    }
}

pub fn gate_reason(r: governance::GateReason) -> v1::GateReason {
    v1::GateReason {
        rule: r.rule,
        expected: r.expected,
        actual: r.actual,
        evidence: r.evidence,
    }
}

fn version_state(label: &str, v: &VersionState) -> v1::VersionState {
    v1::VersionState {
        version: label.to_owned(),
        content_digest: hex_decode(&v.content_digest),
        author: v.author.clone(),
        registered_by: v.registered_by.clone(),
        parent_version: v.parent.clone().unwrap_or_default(),
        created_sequence: v.created_sequence,
        created_at: Some(timestamp(v.created_at_us)),
        stage: v.stage.as_str().to_owned(),
        evals: v
            .evals
            .iter()
            .map(|(suite, r)| v1::SuiteResult {
                suite: suite.clone(),
                passed: r.passed,
                sequence: r.sequence,
                recorded_at: Some(timestamp(r.recorded_at_us)),
                metrics: r
                    .metrics
                    .iter()
                    .map(|(name, m)| v1::MetricResult {
                        name: name.clone(),
                        value: m.value,
                        threshold: m.threshold,
                        direction: m.direction as i32,
                        passed: m.passed,
                    })
                    .collect(),
            })
            .collect(),
        approvals: {
            let mut all: Vec<v1::ApprovalState> = v
                .approvals
                .iter()
                .flat_map(|(env, list)| {
                    list.iter().map(move |a| v1::ApprovalState {
                        environment: env.clone(),
                        approver: a.approver.clone(),
                        decision: a.decision as i32,
                        sequence: a.sequence,
                        recorded_at: Some(timestamp(a.recorded_at_us)),
                    })
                })
                .collect();
            all.sort_by_key(|a| a.sequence);
            all
        },
        incident_ids: v.incidents.iter().cloned().collect(),
    }
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn environment_state(name: &str, e: &EnvironmentState) -> v1::EnvironmentState {
    v1::EnvironmentState {
        environment: name.to_owned(),
        live_version: e
            .live
            .as_ref()
            .map(|l| l.version.clone())
            .unwrap_or_default(),
        live_since_sequence: e.live.as_ref().map_or(0, |l| l.sequence),
        history: e
            .history
            .iter()
            .map(|d| v1::DeploymentState {
                version: d.version.clone(),
                sequence: d.sequence,
                recorded_at: Some(timestamp(d.recorded_at_us)),
                deployer: d.actor.clone(),
                override_justification: d.override_justification.clone().unwrap_or_default(),
                rollback: d.is_rollback,
            })
            .collect(),
        drift: e.drift.is_some(),
        drift_incident_id: e
            .drift
            .as_ref()
            .map(|d| d.incident_id.clone())
            .unwrap_or_default(),
        drift_finding: e
            .drift
            .as_ref()
            .map(|d| d.finding.clone())
            .unwrap_or_default(),
    }
}

pub fn incident(i: &IncidentState) -> v1::Incident {
    let resolution = i.resolution.as_ref();
    v1::Incident {
        incident_id: i.id.clone(),
        subject: i.subject.clone(),
        version: i.version.clone().unwrap_or_default(),
        environment: i.environment.clone().unwrap_or_default(),
        severity: i.severity as i32,
        category: i.category as i32,
        description: i.description.clone(),
        related_sequence: i.related_sequence.unwrap_or(0),
        opened_sequence: i.opened_sequence,
        opened_at: Some(timestamp(i.opened_at_us)),
        opened_by: i.opened_by.clone(),
        open: i.is_open(),
        resolved_sequence: resolution.map_or(0, |r| r.sequence),
        resolved_at: resolution.map(|r| timestamp(r.recorded_at_us)),
        resolution: resolution.map(|r| r.resolution.clone()).unwrap_or_default(),
        fixing_version: resolution
            .and_then(|r| r.fixing_version.clone())
            .unwrap_or_default(),
    }
}

fn versions_in_order(subject: &SubjectState) -> Vec<v1::VersionState> {
    let mut versions: Vec<_> = subject.versions().collect();
    versions.sort_by_key(|(_, v)| v.created_sequence);
    versions
        .into_iter()
        .map(|(label, v)| version_state(label, v))
        .collect()
}

fn subject_state(
    state: &State,
    name: &str,
    subject: &SubjectState,
    as_of_sequence: u64,
) -> v1::SubjectState {
    let environments: Vec<_> = subject
        .environments()
        .map(|(n, e)| environment_state(n, e))
        .collect();
    v1::SubjectState {
        subject: name.to_owned(),
        kind: subject.kind() as i32,
        as_of_sequence,
        created_sequence: subject.created_sequence(),
        versions: versions_in_order(subject),
        drift: environments.iter().any(|e| e.drift),
        environments,
        open_incidents: subject
            .open_incident_ids()
            .filter_map(|id| state.incident(id))
            .map(incident)
            .collect(),
    }
}

#[tonic::async_trait]
impl governance_server::Governance for GovernanceService {
    async fn check_gate(
        &self,
        request: Request<v1::CheckGateRequest>,
    ) -> Result<Response<v1::GateDecision>, Status> {
        let caller = self.auth.check(&request, "CheckGate", Action::Read)?.name;
        let r = request.into_inner();
        required(&r.subject, "subject")?;
        required(&r.version, "version")?;
        required(&r.environment, "environment")?;
        let point = self.point(r.as_of.as_ref())?;
        let state = self.state_at(&r.subject, point).await?;
        let deployer = if r.deployer.is_empty() {
            caller.to_string()
        } else {
            r.deployer
        };
        // "As of" a moment, evidence ages are judged at that moment.
        let now = match r.as_of.as_ref().and_then(|a| a.point.as_ref()) {
            None => crate::ledger::now_us(),
            Some(Point::Time(t)) => micros(t, "as_of.time")?,
            Some(Point::Sequence(_)) => self.ledger.recorded_at(point).unwrap_or(i64::MIN),
        };
        let decision = governance::check_gate(
            &state,
            &r.subject,
            &r.version,
            &r.environment,
            &deployer,
            now,
        );
        Ok(Response::new(gate_decision(decision, point)))
    }

    async fn get_subject_state(
        &self,
        request: Request<v1::GetSubjectStateRequest>,
    ) -> Result<Response<v1::SubjectState>, Status> {
        self.auth.check(&request, "GetSubjectState", Action::Read)?;
        let r = request.into_inner();
        required(&r.subject, "subject")?;
        let point = self.point(r.as_of.as_ref())?;
        let state = self.state_at(&r.subject, point).await?;
        let subject = state
            .subject(&r.subject)
            .ok_or_else(|| not_found(&r.subject, point, r.as_of.as_ref()))?;
        Ok(Response::new(subject_state(
            &state, &r.subject, subject, point,
        )))
    }

    async fn list_subjects(
        &self,
        request: Request<v1::ListSubjectsRequest>,
    ) -> Result<Response<v1::ListSubjectsResponse>, Status> {
        self.auth.check(&request, "ListSubjects", Action::Read)?;
        let r = request.into_inner();
        let size = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(LedgerError::invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE}"),
                )
                .into());
            }
            n => n,
        };
        let state = self.ledger.state();
        // The token is the last subject of the previous page: pages stay
        // stable while subjects are added.
        let mut page: Vec<v1::SubjectSummary> = state
            .subjects()
            .filter(|(name, _)| r.page_token.is_empty() || *name > r.page_token.as_str())
            .take(size + 1)
            .map(|(name, s)| v1::SubjectSummary {
                subject: name.to_owned(),
                kind: s.kind() as i32,
                live_versions: s
                    .environments()
                    .filter_map(|(env, e)| Some((env.to_owned(), e.live.as_ref()?.version.clone())))
                    .collect::<BTreeMap<_, _>>(),
                open_incidents: s.open_incident_ids().count() as u32,
                drift: s.environments().any(|(_, e)| e.drift.is_some()),
                versions: s.versions().count() as u32,
            })
            .collect();
        let next_page_token = if page.len() > size {
            page.truncate(size);
            page.last().map(|s| s.subject.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListSubjectsResponse {
            subjects: page,
            next_page_token,
            as_of_sequence: state.sequence(),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<v1::ListIncidentsRequest>,
    ) -> Result<Response<v1::ListIncidentsResponse>, Status> {
        self.auth.check(&request, "ListIncidents", Action::Read)?;
        let r = request.into_inner();
        let status = v1::IncidentStatus::try_from(r.status).map_err(|_| {
            LedgerError::invalid("status", format!("unknown incident status {}", r.status))
        })?;
        if r.min_severity != 0 && v1::Severity::try_from(r.min_severity).is_err() {
            return Err(LedgerError::invalid(
                "min_severity",
                format!("unknown severity {}", r.min_severity),
            )
            .into());
        }
        let state = self.ledger.state();
        let mut incidents: Vec<v1::Incident> = state
            .incidents()
            .filter(|i| match status {
                v1::IncidentStatus::Any => true,
                v1::IncidentStatus::Open => i.is_open(),
                v1::IncidentStatus::Resolved => !i.is_open(),
            })
            .filter(|i| r.subject.is_empty() || i.subject == r.subject)
            .filter(|i| i.severity as i32 >= r.min_severity)
            .map(incident)
            .collect();
        incidents.sort_by_key(|i| i.opened_sequence);
        Ok(Response::new(v1::ListIncidentsResponse {
            incidents,
            as_of_sequence: state.sequence(),
        }))
    }

    async fn get_version_history(
        &self,
        request: Request<v1::GetVersionHistoryRequest>,
    ) -> Result<Response<v1::VersionHistory>, Status> {
        self.auth
            .check(&request, "GetVersionHistory", Action::Read)?;
        let r = request.into_inner();
        required(&r.subject, "subject")?;
        let state = self.ledger.state();
        let subject = state
            .subject(&r.subject)
            .ok_or_else(|| not_found(&r.subject, state.sequence(), None))?;
        Ok(Response::new(v1::VersionHistory {
            subject: r.subject.clone(),
            versions: versions_in_order(subject),
            environments: subject
                .environments()
                .map(|(n, e)| environment_state(n, e))
                .collect(),
            as_of_sequence: state.sequence(),
        }))
    }
}

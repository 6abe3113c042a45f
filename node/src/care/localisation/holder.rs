//! The holder's side of localisation (spec: `specs/consent-localisation.md` §7): answering
//! `/knoop/locate/1`. The holder decides which of its organisations share which categories with
//! the requester under the consent mode, rate-limits per requester, and logs every answer.

use super::*;

impl Localisation {
    /// Answers `/knoop/locate/1` from `peer`.
    pub fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8> {
        let operator = self.dids.did_of_peer(&peer.to_string());
        self.decide(&peer.to_string(), operator, request)
    }

    /// The holder's decision (spec §7), logged whatever it is.
    pub(super) fn decide(&self, peer: &str, operator: Option<String>, request: &[u8]) -> Vec<u8> {
        let encode = |r: &LocateResponse| cbor4ii::serde::to_vec(Vec::new(), r).unwrap_or_default();
        let Ok(req) = cbor4ii::serde::from_slice::<LocateRequest>(request) else {
            return encode(&LocateResponse::Refused("bad_request".into()));
        };
        let Ok(p) = <[u8; 32]>::try_from(req.patient.as_slice()) else {
            return encode(&LocateResponse::Refused("bad_request".into()));
        };
        let mut audit = crate::care::audit::Event {
            kind: "locate".into(),
            peer: peer.to_owned(),
            operator: operator.clone(),
            requester: req.requester.clone(),
            who: req.who.chars().take(128).collect(),
            purpose: req.purpose.clone(),
            patient: knoop_privacy::patient::reference_of(&p),
            outcome: String::new(),
            categories: Vec::new(),
            scope: String::new(),
            ..Default::default()
        };
        let (outcome, response) = match self.allowed(operator.as_deref(), &req) {
            Err(why) => (why, MISS.to_vec()),
            Ok(()) if !self.take_token(&req.requester) => (
                "rate_limited".to_owned(),
                encode(&LocateResponse::Refused("rate_limited".into())),
            ),
            Ok(()) => match self.record(&p) {
                None => ("unknown_patient".to_owned(), MISS.to_vec()),
                Some(rec) => {
                    let holdings: Vec<Holding> = self
                        .shared(&p, &rec, &req.requester, &req.purpose, self.opt_out)
                        .into_iter()
                        .map(|(holder, categories)| Holding { holder, categories })
                        .collect();
                    audit.categories = holdings
                        .iter()
                        .flat_map(|h| h.categories.iter().cloned())
                        .collect();
                    let outcome = if holdings.is_empty() {
                        "no_permitted_data"
                    } else {
                        "answered"
                    };
                    (
                        outcome.to_owned(),
                        encode(&LocateResponse::Holdings(holdings)),
                    )
                }
            },
        };
        audit.outcome = outcome;
        self.audit.append(audit);
        response
    }

    /// Who may ask (spec §7 step 3): a member node, for itself or an organisation it hosts
    /// that holds a trusted organisation credential.
    pub(super) fn allowed(
        &self,
        operator: Option<&str>,
        req: &LocateRequest,
    ) -> Result<(), String> {
        let operator = operator.ok_or("not_a_member_node")?;
        if !PURPOSES.contains(&req.purpose.as_str()) {
            return Err("bad_purpose".into());
        }
        let hosted_there = req.requester == operator
            || self.dids.current(&req.requester).is_some_and(|(_, doc)| {
                doc.service_of_type(HOST_SERVICE_TYPE)
                    .is_some_and(|s| s.service_endpoint == operator)
            });
        if !hosted_there {
            return Err("requester_not_hosted_by_the_asking_node".into());
        }
        if self.credentials.organisation(&req.requester).is_none() {
            return Err("requester_not_a_trusted_organisation".into());
        }
        Ok(())
    }

    /// The categories each tenant shares for this request, under the consent mode and the
    /// consents held here about the patient (spec §4).
    pub(super) fn shared(
        &self,
        p: &[u8; 32],
        rec: &PatientRecord,
        requester: &str,
        purpose: &str,
        opt_out: bool,
    ) -> Vec<(String, Vec<String>)> {
        let reference = knoop_privacy::patient::reference_of(p);
        let consents = self.consents.applicable(&reference);
        let type_of = |did: &str| {
            self.credentials
                .organisation(did)
                .map(|e| e.organization_type)
        };
        let requester_type = type_of(requester);
        let now_ms = knoop_gossip::tx::now_ms() as i64;
        rec.tenants
            .iter()
            .filter_map(|(holder, cats)| {
                let holder_type = type_of(holder);
                let categories: Vec<String> = cats
                    .iter()
                    .filter(|c| {
                        crate::care::consent::shared(
                            opt_out,
                            &consents,
                            &crate::care::consent::Question {
                                holder,
                                holder_type: holder_type.as_deref(),
                                requester,
                                requester_type: requester_type.as_deref(),
                                category: c,
                                purpose,
                                now_ms,
                            },
                        )
                    })
                    .cloned()
                    .collect();
                (!categories.is_empty()).then(|| (holder.clone(), categories))
            })
            .collect()
    }

    pub(super) fn take_token(&self, requester: &str) -> bool {
        self.buckets.take(requester)
    }
}

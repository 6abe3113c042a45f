//! Care services: what organisations do about patients. Private transactions (the sealed
//! channel between nodes), localisation (who holds data about whom), consent, access tokens
//! and their policies, the source systems, the data proxy and the fetch from every holder, the
//! wallet of credentials the organisations present (received over OpenID4VCI), the policy
//! decision point (Rego) and the audit log that records each decision; the patient's own view
//! (a holder's answers to patient services, and the patient service). No HTTP here: `api` calls these.

pub mod audit;
pub mod buckets;
pub mod categories;
pub mod consent;
pub mod consent_registration;
pub mod data_proxy;
pub mod data_sets;
pub mod dpop;
pub mod fetch;
pub mod fhir_consent;
pub mod localisation;
pub mod notified_pull;
pub mod nvi;
pub mod patient_access;
pub mod patient_service;
pub mod pdp;
pub mod private;
pub mod requester;
pub mod source;
pub mod subscriptions;
pub mod tokens;
pub mod wallet;

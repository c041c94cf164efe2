//! Switches the engine cannot honour are refused by name, and the engine
//! fails closed while one is on; switches only the server can honour are
//! listed as server requirements and leave the engine's analyses alone.

use llm_security::model::{Disposition, ServerRequirement, disposition};
use llm_security::{
    ContextKind, Error, InputValidation, ProfileIssue, RedundantValidation, SecurityEngine, SecurityProfile,
    ValidationControl, ZeroTrustConfig,
};
use serde_json::Value;

/// A profile with every switch off except the one at `path`.
fn alone(path: &str) -> SecurityProfile {
    let mut doc = serde_json::to_value(SecurityProfile::every_flag(false)).expect("profile serializes");
    let parts: Vec<&str> = path.split('.').collect();
    let target = match parts.as_slice() {
        [section, switch] => doc.get_mut(*section).and_then(|s| s.get_mut(*switch)),
        [section, slot, switch] => doc
            .get_mut(*section)
            .and_then(|s| s.get_mut(*slot))
            .and_then(|v| v.as_object_mut())
            .and_then(|m| m.values_mut().next())
            .and_then(|v| v.get_mut(*switch)),
        _ => None,
    };
    match target {
        Some(v) => *v = Value::Bool(true),
        None => panic!("no switch at {path}"),
    }
    SecurityProfile::from_json_str(&doc.to_string()).expect("profile parses")
}

fn switches() -> Vec<(String, Disposition)> {
    SecurityProfile::every_flag(true)
        .flags()
        .into_iter()
        .map(|(p, _)| {
            let d = disposition(&p).expect("every switch has a disposition");
            (p, d)
        })
        .collect()
}

#[test]
fn every_refused_switch_is_named() {
    let base = SecurityEngine::new();
    let mut n = 0;
    for (path, d) in switches() {
        let Disposition::Refused(reason) = d else { continue };
        n += 1;
        let e = base.with_profile(alone(&path));
        let err = e.profile_check().expect_err(&path);
        assert_eq!(err.refused(), [path.as_str()]);
        assert!(err.to_string().contains(&path) && err.to_string().contains(reason), "{err}");
        for r in [
            e.analyze_input_sync("What is the capital of France?"),
            e.validate_output_sync("Paris."),
            e.analyze_context_sync("The meeting is at noon.", ContextKind::Document),
        ] {
            match r {
                Err(Error::Profile(p)) => assert_eq!(p, err),
                other => panic!("{path}: analysis did not fail closed: {other:?}"),
            }
        }
        let Err(Error::Profile(p)) = base.try_with_profile(alone(&path)) else {
            panic!("{path}: try_with_profile accepted it")
        };
        assert_eq!(p.refused(), [path.as_str()]);
    }
    assert!(n > 100, "{n}");
    // Off, the same switches are fine.
    assert!(base.with_profile(SecurityProfile::every_flag(false)).profile_check().is_ok());
}

#[test]
fn server_switches_are_requirements() {
    let base = SecurityEngine::new();
    let mut seen = std::collections::BTreeSet::new();
    for (path, d) in switches() {
        let Disposition::Server(req) = d else { continue };
        let profile = alone(&path);
        assert!(profile.check().is_ok(), "{path}");
        let reqs = profile.server_requirements();
        assert_eq!(reqs.keys().copied().collect::<Vec<_>>(), [req], "{path}");
        assert_eq!(reqs[&req], std::slice::from_ref(&path));
        seen.insert(req);
        let e = base.try_with_profile(alone(&path)).expect("a server switch is no refusal");
        assert!(e.analyze_input_sync("What is the capital of France?").is_ok());
    }
    assert!(seen.contains(&ServerRequirement::AuditLog) && seen.contains(&ServerRequirement::Scopes));
    // Off, nothing is required.
    assert!(SecurityProfile::every_flag(false).server_requirements().is_empty());
}

#[test]
fn seed_zero_trust_block_names_encryption_and_lists_server_controls() {
    let zero_trust_config = ZeroTrustConfig::new()
        .with_continuous_verification(true)
        .with_least_privilege_access(true)
        .with_micro_segmentation(true)
        .with_encryption_everywhere(true)
        .with_audit_everything(true)
        .with_never_trust(true)
        .with_always_verify(true);
    let engine = SecurityEngine::new().with_zero_trust_config(zero_trust_config.clone());
    let err = engine.profile_check().expect_err("encryption_everywhere is refused");
    assert_eq!(err.refused(), ["zero_trust_config.encryption_everywhere"]);
    let reqs = engine.profile().server_requirements();
    for r in [ServerRequirement::ApiKeys, ServerRequirement::Scopes, ServerRequirement::TenantIsolation] {
        assert!(reqs.contains_key(&r), "{r}");
    }
    // Without the refused switch the engine runs, and never_trust shows.
    let engine = SecurityEngine::new().with_zero_trust_config(zero_trust_config.with_encryption_everywhere(false));
    let a = engine.analyze_input_sync("What is the capital of France?").expect("runs");
    assert!(a.sanitized().is_some());
}

#[test]
fn a_slot_with_another_variant_fails_closed() {
    let engine = SecurityEngine::new().with_input_validation(InputValidation::new().with_pattern_validation(
        ValidationControl::EncodingValidation {
            unicode_normalization: true,
            encoding_standardization: true,
            character_filtering: true,
            encoding_validation: true,
        },
    ));
    let err = engine.profile_check().expect_err("wrong variant");
    assert!(
        matches!(&err.issues[..], [ProfileIssue::WrongVariant { slot, .. }] if slot == "input_validation.pattern_validation")
    );
    assert!(matches!(engine.analyze_input_sync("hi"), Err(Error::Profile(_))));
}

#[test]
fn redundant_validation_needs_a_stage_and_a_check() {
    let stage_only =
        SecurityEngine::new().with_redundant_validation(RedundantValidation::new().with_input_validation(true));
    assert!(stage_only.profile_check().is_err());
    let check_only =
        SecurityEngine::new().with_redundant_validation(RedundantValidation::new().with_final_validation(true));
    assert!(check_only.profile_check().is_err());
    let both = SecurityEngine::new()
        .with_redundant_validation(RedundantValidation::new().with_input_validation(true).with_final_validation(true));
    assert!(both.profile_check().is_ok());
}

#[test]
fn profile_file_in_every_format_gives_the_same_engine() {
    let dir = std::env::temp_dir().join(format!("llmsec-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = alone("zero_trust_config.never_trust");
    let files = [
        ("p.toml", toml::to_string(&p).expect("toml")),
        ("p.yaml", serde_norway::to_string(&p).expect("yaml")),
        ("p.json", serde_json::to_string(&p).expect("json")),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        assert_eq!(SecurityProfile::from_path(&path).expect(name), p);
    }
    std::fs::write(dir.join("bad.toml"), "[zero_trust_config]\nnever_trusted = true\n").expect("write");
    let e = SecurityProfile::from_path(dir.join("bad.toml")).expect_err("unknown key");
    assert!(e.to_string().contains("never_trusted") && e.to_string().contains("bad.toml"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! The built-in scanners, one file each, and the lists the engine runs.

pub mod classifier;
pub(crate) mod defensive;
pub mod indirect;
pub mod intent;
pub mod jailbreak;
pub mod output;
pub mod persuasion;
pub mod prompt_injection;
pub mod rules;
pub mod suffix;
pub mod unicode;

use crate::canary::CanaryIssuer;
use crate::config::SecurityConfig;
use crate::scanner::Scanner;

/// The scanners `analyze_input` runs, in order, before the learned layer
/// (see [`learned_scanner`]).
pub(crate) fn input_scanners(cfg: &SecurityConfig) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    let families = cfg.threat_model.enabled_families();
    if cfg.prompt_injection_detection {
        push_injection_scanners(cfg, &families, indirect::Mode::Prompt, &mut v);
    }
    if cfg.jailbreak_detection {
        v.push(Box::new(jailbreak::scanner(&families)));
        let jb = &cfg.threat_model.jailbreak;
        if jb.adversarial_suffix {
            v.push(Box::new(suffix::SuffixScanner::new("adversarial_suffix")));
        }
        if jb.persuasion {
            v.push(Box::new(persuasion::PersuasionScanner::new("persuasion", jb)));
        }
    }
    if cfg.unicode_attack_detection {
        v.push(Box::new(unicode::UnicodeScanner::new("unicode")));
    }
    v
}

/// The prompt-injection rules, the intent grammar and the indirect scanner
/// at `mode` (its prompt or its content setting), as prompts and content
/// both run them.
fn push_injection_scanners(
    cfg: &SecurityConfig,
    families: &std::collections::BTreeSet<String>,
    mode: indirect::Mode,
    v: &mut Vec<Box<dyn Scanner>>,
) {
    v.push(Box::new(prompt_injection::scanner(families)));
    v.push(Box::new(intent::scanner(families)));
    let normalize = cfg.threat_model.unicode.normalize_options();
    let indirect = indirect::scanner(families, mode, &normalize);
    if !indirect.is_idle() {
        v.push(Box::new(indirect));
    }
}

/// The learned layer, run after every other input scanner (it reads their
/// findings as features), or `None` when it is off.
pub(crate) fn learned_scanner(cfg: &SecurityConfig) -> Option<Box<dyn Scanner>> {
    // The built-in model is checked by the crate's tests; a defect there
    // leaves the rules running rather than failing every engine build.
    let model = crate::classifier::Model::builtin().ok()?;
    (cfg.classifier.enabled && (cfg.prompt_injection_detection || cfg.jailbreak_detection)).then(|| {
        Box::new(classifier::ClassifierScanner::new("classifier", model, cfg.classifier.threshold)) as Box<dyn Scanner>
    })
}

/// The scanners `analyze_context` runs for content of this provenance, in
/// order: injection rules, the intent grammar, the indirect scanner at its
/// content setting, Unicode.
pub(crate) fn context_scanners(cfg: &SecurityConfig, provenance: indirect::Provenance) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    let families = cfg.threat_model.enabled_families();
    if cfg.prompt_injection_detection {
        push_injection_scanners(cfg, &families, indirect::Mode::Content(provenance), &mut v);
    }
    if cfg.unicode_attack_detection {
        v.push(Box::new(unicode::UnicodeScanner::new("unicode")));
    }
    v
}

/// The secret and PII scanners, as `analyze_input` and redaction run them.
pub(crate) fn data_scanners(pii_types: &crate::config::PiiConfig, secrets: bool, pii: bool) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    if secrets {
        v.push(Box::new(output::secrets::SecretsScanner::new("secrets")));
    }
    if pii {
        v.push(Box::new(output::pii::PiiScanner::new("pii", pii_types)));
    }
    v
}

/// The scanners `validate_output` runs, in order.
pub(crate) fn output_scanners(cfg: &SecurityConfig, canary: &CanaryIssuer) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    if cfg.unicode_attack_detection {
        v.push(Box::new(unicode::UnicodeScanner::new("unicode")));
    }
    if cfg.output_validation {
        v.extend(output::build(&cfg.output, canary));
    }
    v
}

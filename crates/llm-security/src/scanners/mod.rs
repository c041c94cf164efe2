//! The built-in scanners, one file each, and the lists the engine runs.

pub mod classifier;
pub mod indirect;
pub mod jailbreak;
pub mod output;
pub mod prompt_injection;
pub mod rules;
pub mod unicode;

use crate::canary::CanaryIssuer;
use crate::config::SecurityConfig;
use crate::scanner::Scanner;

/// The scanners `analyze_input` runs, in order.
pub(crate) fn input_scanners(cfg: &SecurityConfig) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    let families = cfg.threat_model.enabled_families();
    if cfg.prompt_injection_detection {
        v.push(Box::new(prompt_injection::scanner(&families)));
        let normalize = cfg.threat_model.unicode.normalize_options();
        let indirect = indirect::scanner(&families, indirect::Mode::Prompt, &normalize);
        if !indirect.is_idle() {
            v.push(Box::new(indirect));
        }
    }
    if cfg.jailbreak_detection {
        v.push(Box::new(jailbreak::scanner(&families)));
    }
    if cfg.unicode_attack_detection {
        v.push(Box::new(unicode::UnicodeScanner::new("unicode")));
    }
    // The built-in model is checked by the crate's tests; a defect there
    // leaves the rules running rather than failing every engine build.
    if cfg.classifier.enabled
        && (cfg.prompt_injection_detection || cfg.jailbreak_detection)
        && let Ok(model) = crate::classifier::Model::builtin()
    {
        v.push(Box::new(classifier::ClassifierScanner::new("classifier", model, cfg.classifier.threshold)));
    }
    v
}

/// The scanners `analyze_context` runs for content of this provenance, in
/// order: injection rules, the indirect scanner at its content setting,
/// Unicode.
pub(crate) fn context_scanners(cfg: &SecurityConfig, provenance: indirect::Provenance) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    let families = cfg.threat_model.enabled_families();
    if cfg.prompt_injection_detection {
        v.push(Box::new(prompt_injection::scanner(&families)));
        let normalize = cfg.threat_model.unicode.normalize_options();
        let indirect = indirect::scanner(&families, indirect::Mode::Content(provenance), &normalize);
        if !indirect.is_idle() {
            v.push(Box::new(indirect));
        }
    }
    if cfg.unicode_attack_detection {
        v.push(Box::new(unicode::UnicodeScanner::new("unicode")));
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

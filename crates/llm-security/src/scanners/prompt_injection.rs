//! The prompt-injection scanner: the rules of `patterns/prompt_injection.toml`.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use super::rules::{RuleScanner, RuleSet};

static RULES: LazyLock<Arc<RuleSet>> = LazyLock::new(|| {
    // The file is part of the crate and compiled by its tests; failing here
    // is a build defect, not a user error.
    #[allow(clippy::expect_used)]
    Arc::new(
        RuleSet::parse("patterns/prompt_injection.toml", include_str!("../../patterns/prompt_injection.toml"))
            .expect("built-in prompt_injection patterns compile"),
    )
});

/// The compiled built-in rules (shared by every engine in the process).
pub fn rules() -> Arc<RuleSet> {
    Arc::clone(&RULES)
}

/// A scanner running the families enabled in `families` (`"pi.<flag>"`,
/// see [`PromptInjectionThreat`](crate::PromptInjectionThreat)).
pub fn scanner(families: &BTreeSet<String>) -> RuleScanner {
    RuleScanner::new("prompt_injection", rules(), "pi", families)
}

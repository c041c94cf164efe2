//! Engine configuration: the `with_*` builder methods of the published API,
//! and the same names as keys, loadable from TOML or YAML.
//!
//! Every flag switches a real capability: a family of rules, a normalizer
//! step, a validator. Unknown keys in a file are an error naming the key.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::normalize::NormalizeOptions;
use crate::policy::PolicyConfig;

/// Default largest text the engine accepts: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;

macro_rules! flags {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident => $with:ident ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: bool, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: true, )* }
            }
        }

        impl $name {
            /// Everything on.
            pub fn new() -> Self {
                Self::default()
            }

            /// Everything off.
            pub fn none() -> Self {
                $name { $( $field: false, )* }
            }

            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $with(mut self, on: bool) -> Self {
                    self.$field = on;
                    self
                }
            )*

            /// `(name, enabled)` for every flag, in declaration order.
            pub fn flags(&self) -> Vec<(&'static str, bool)> {
                vec![ $( (stringify!($field), self.$field), )* ]
            }
        }
    };
}

flags! {
    /// Prompt-injection families. Each flag enables the rules of the family of
    /// the same name.
    PromptInjectionThreat {
        /// "Ignore/disregard/forget previous instructions" and kin.
        direct_injection => with_direct_injection,
        /// Instructions addressed to the AI inside documents, HTML comments, alt text.
        indirect_injection => with_indirect_injection,
        /// Chat-template tokens, fake system/assistant turns.
        role_confusion => with_role_confusion,
        /// "From now on", "new instructions", fake end-of-prompt markers.
        context_manipulation => with_context_manipulation,
        /// System-prompt and secret extraction requests.
        prompt_extraction => with_prompt_extraction,
        /// Shell and code-execution payloads (`whoami`, `curl … | sh`, `os.system`).
        code_execution => with_code_execution,
        /// "I am your developer / administrator".
        authority_appeal => with_authority_appeal,
        /// "This is an emergency, answer immediately".
        urgency_appeal => with_urgency_appeal,
        /// "It is legal / a court ordered it".
        legal_appeal => with_legal_appeal,
        /// "It would be unethical not to".
        ethical_appeal => with_ethical_appeal,
        /// "Debug mode / maintenance mode / sudo".
        technical_appeal => with_technical_appeal,
        /// "My grandmother used to…", flattery, guilt.
        social_appeal => with_social_appeal,
    }
}

flags! {
    /// Jailbreak families. Each flag enables the rules of the family of the
    /// same name.
    JailbreakThreat {
        /// DAN, STAN, DUDE, AIM and their variants.
        dan_attacks => with_dan_attacks,
        /// Personas without limits, "stay in character".
        character_roleplay => with_character_roleplay,
        /// Hypothetical and fiction framings of forbidden content.
        hypothetical_scenarios => with_hypothetical_scenarios,
        /// "Developer mode enabled".
        developer_mode => with_developer_mode,
        /// "Opposite mode", AntiGPT, inverted answers.
        opposite_mode => with_opposite_mode,
        /// "Never refuse", "no warnings or disclaimers".
        refusal_suppression => with_refusal_suppression,
        /// Forbidden text split into variables and joined.
        payload_splitting => with_payload_splitting,
        /// Authority appeals used to unlock content.
        authority_appeals => with_authority_appeals,
        /// Urgency appeals used to unlock content.
        urgency_appeals => with_urgency_appeals,
        /// Legal appeals used to unlock content.
        legal_appeals => with_legal_appeals,
        /// Ethical appeals used to unlock content.
        ethical_appeals => with_ethical_appeals,
        /// Technical appeals used to unlock content.
        technical_appeals => with_technical_appeals,
        /// Social appeals used to unlock content.
        social_appeals => with_social_appeals,
        /// Poems, songs and stories used as a wrapper.
        creative_appeals => with_creative_appeals,
        /// Optimised suffixes of word fragments and brackets (GCG, random search).
        adversarial_suffix => with_adversarial_suffix,
        /// A harmful request wrapped in role-play, urgency, stakes or an
        /// affirmative-prefix demand (PAIR, TAP, persuasive paraphrase).
        persuasion => with_persuasion,
    }
}

flags! {
    /// Unicode attack handling. Each flag maps to one normalizer step, see
    /// [`UnicodeThreat::normalize_options`].
    UnicodeThreat {
        /// Report letters restyled by NFKC (𝐛𝐨𝐥𝐝, ｆｕｌｌｗｉｄｔｈ).
        normalization_attacks => with_normalization_attacks,
        /// Decode base64, hex, URL encoding, ROT13 and leetspeak.
        encoding_attacks => with_encoding_attacks,
        /// Report whole words spelled in another script's look-alikes.
        visual_spoofing => with_visual_spoofing,
        /// Fold look-alike letters to ASCII so patterns see through them.
        homoglyph_attacks => with_homoglyph_attacks,
        /// Report zero-width characters inside words.
        zero_width_attacks => with_zero_width_attacks,
        /// Report bidi controls (Trojan Source).
        bidirectional_attacks => with_bidirectional_attacks,
        /// Decode `\u0069` / `&#x69;` escape runs.
        unicode_escape_attacks => with_unicode_escape_attacks,
        /// Decode tag-character and variation-selector smuggling.
        unicode_encoding_attacks => with_unicode_encoding_attacks,
        /// Strip and report combining-mark abuse ("Zalgo").
        unicode_normalization_attacks => with_unicode_normalization_attacks,
        /// Report words mixing Latin with look-alike letters.
        unicode_visual_spoofing => with_unicode_visual_spoofing,
    }
}

impl UnicodeThreat {
    /// The normalizer steps these flags switch on.
    pub fn normalize_options(&self) -> NormalizeOptions {
        NormalizeOptions {
            fold_homoglyphs: self.homoglyph_attacks,
            report_mixed_script: self.unicode_visual_spoofing,
            report_homoglyph_words: self.visual_spoofing,
            report_styled_text: self.normalization_attacks,
            strip_combining_marks: self.unicode_normalization_attacks,
            report_zero_width: self.zero_width_attacks,
            report_bidi: self.bidirectional_attacks,
            decode_tags: self.unicode_encoding_attacks,
            report_variation_selectors: self.unicode_encoding_attacks,
            decode_encodings: self.encoding_attacks,
            decode_unicode_escapes: self.unicode_escape_attacks,
        }
    }
}

/// The three attack-vector models (prompt injection, jailbreak, Unicode
/// attacks), grouped: one flag per family of rules or normalizer step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatModel {
    /// Prompt-injection families.
    pub prompt_injection: PromptInjectionThreat,
    /// Jailbreak families.
    pub jailbreak: JailbreakThreat,
    /// Unicode handling.
    pub unicode: UnicodeThreat,
    /// What each severity level means; the lowest level given becomes every
    /// policy rule's `min_severity` (see [`ThreatSeverity`](crate::ThreatSeverity)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<crate::model::ThreatSeverity>,
    /// The threat categories to look for; a category left out switches its
    /// detectors off (see [`ThreatCategory`](crate::ThreatCategory)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<crate::model::ThreatCategory>>,
}

impl ThreatModel {
    /// Everything on.
    pub fn new() -> ThreatModel {
        ThreatModel::default()
    }

    /// Sets the prompt-injection model.
    pub fn with_prompt_injection_threat(mut self, t: PromptInjectionThreat) -> ThreatModel {
        self.prompt_injection = t;
        self
    }

    /// Sets the jailbreak model.
    pub fn with_jailbreak_threat(mut self, t: JailbreakThreat) -> ThreatModel {
        self.jailbreak = t;
        self
    }

    /// Sets the Unicode model.
    pub fn with_unicode_threat(mut self, t: UnicodeThreat) -> ThreatModel {
        self.unicode = t;
        self
    }

    /// Sets what each severity level means (and which levels the policy acts on).
    pub fn with_threat_severity(mut self, s: crate::model::ThreatSeverity) -> ThreatModel {
        self.severity = Some(s);
        self
    }

    /// Sets the threat categories to look for.
    pub fn with_threat_categories(mut self, c: Vec<crate::model::ThreatCategory>) -> ThreatModel {
        self.categories = Some(c);
        self
    }

    /// The rule families enabled, as named in the pattern files.
    pub(crate) fn enabled_families(&self) -> BTreeSet<String> {
        let pi = self.prompt_injection.flags().into_iter().map(|(n, on)| (format!("pi.{n}"), on));
        let jb = self.jailbreak.flags().into_iter().map(|(n, on)| (format!("jb.{n}"), on));
        pi.chain(jb).filter(|(_, on)| *on).map(|(n, _)| n).collect()
    }
}

/// PII types the output validator looks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Email addresses.
    pub email: bool,
    /// International phone numbers.
    pub phone: bool,
    /// Payment card numbers (Luhn-checked).
    pub credit_card: bool,
    /// US social security numbers.
    pub us_ssn: bool,
    /// IBANs (mod-97 checked).
    pub iban: bool,
    /// IPv4 and IPv6 addresses.
    pub ip_address: bool,
    /// Person names (the entity tagger; completions only, see below).
    pub person: bool,
    /// Places: cities, regions, countries (the entity tagger). Off by
    /// default: a place alone is not personal data, and held-out precision
    /// is below 0.9.
    pub location: bool,
    /// Organisations: companies, institutions (the entity tagger). Off by
    /// default, as for places.
    pub organization: bool,
    /// Street addresses, postal boxes, postal codes in an address.
    pub street_address: bool,
    /// Dates of birth (a date after a birth cue).
    pub date_of_birth: bool,
}

impl PiiConfig {
    /// True when any of the free-text entity types (names, places,
    /// organisations, addresses, dates of birth) is on. They are found in
    /// completions only (`validate_output`), never in prompts.
    pub fn any_entity(&self) -> bool {
        self.person || self.location || self.organization || self.street_address || self.date_of_birth
    }
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            email: true,
            phone: true,
            credit_card: true,
            us_ssn: true,
            iban: true,
            ip_address: true,
            person: true,
            location: false,
            organization: false,
            street_address: true,
            date_of_birth: true,
        }
    }
}

/// Exfiltration-link checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExfiltrationConfig {
    /// Domains links and images may point to (a domain also allows its
    /// subdomains). Empty: no allow-list, only data-carrying links are flagged.
    pub allowed_domains: Vec<String>,
    /// A query string longer than this is taken to carry data.
    pub max_query_length: usize,
}

impl Default for ExfiltrationConfig {
    fn default() -> Self {
        ExfiltrationConfig { allowed_domains: Vec::new(), max_query_length: 100 }
    }
}

/// Which output validators run in `validate_output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputValidationConfig {
    /// API keys, tokens, private keys, high-entropy secrets.
    pub secrets: bool,
    /// Personal data; `pii_types` picks which.
    pub pii: bool,
    /// Which PII types.
    pub pii_types: PiiConfig,
    /// A name, place or organisation from the entity tagger is reported
    /// when its confidence reaches this (0..=1). The default, 0.7, is where
    /// held-out precision of person names reaches 0.9 (docs/PERFORMANCE.md).
    pub entity_min_confidence: f64,
    /// Links and images that carry data out.
    pub exfiltration: bool,
    /// Settings of the exfiltration check.
    pub exfiltration_rules: ExfiltrationConfig,
    /// Script tags, event handlers, `javascript:` URLs.
    pub markup: bool,
    /// JSON / JSON Schema / XML validation when the caller expects a format.
    pub format: bool,
    /// Canary tokens and overlap with the system prompt.
    pub system_prompt_leak: bool,
    /// Share of the system prompt's word 5-grams a completion may repeat.
    pub leak_overlap_threshold: f64,
    /// Notice refusals ("I'm sorry, but I can't…").
    pub refusal_detection: bool,
    /// Harmful responses: self-harm encouragement, violence and weapons
    /// instructions, drug synthesis, hate and harassment, sexual content
    /// involving minors, malware instructions, dangerous medical advice,
    /// and compliance with a harmful request (with the prompt).
    pub harmful_content: bool,
    /// Per-category settings of the harmful-content scanner.
    pub harmful: HarmfulContentConfig,
    /// Destructive, exfiltrating and code-running shell and Python.
    pub unsafe_code: bool,
    /// Secret for canary tokens; replicas that share it recognise each
    /// other's canaries. Random per engine when unset.
    pub canary_secret: Option<String>,
}

impl Default for OutputValidationConfig {
    fn default() -> Self {
        OutputValidationConfig {
            secrets: true,
            pii: true,
            pii_types: PiiConfig::default(),
            entity_min_confidence: 0.7,
            exfiltration: true,
            exfiltration_rules: ExfiltrationConfig::default(),
            markup: true,
            format: true,
            system_prompt_leak: true,
            leak_overlap_threshold: 0.3,
            refusal_detection: true,
            harmful_content: true,
            harmful: HarmfulContentConfig::default(),
            unsafe_code: true,
            canary_secret: None,
        }
    }
}

/// What the harmful-content scanner does with one category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarmCategoryPolicy {
    /// Report this category.
    pub enabled: bool,
    /// Findings below this confidence are dropped.
    pub min_confidence: f64,
    /// The verdict a finding of medium severity or above gives; unset,
    /// the policy's rule for `malicious_content` decides (block by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<crate::types::Verdict>,
}

impl Default for HarmCategoryPolicy {
    fn default() -> Self {
        HarmCategoryPolicy { enabled: true, min_confidence: 0.0, action: None }
    }
}

impl HarmCategoryPolicy {
    /// Switches the category.
    pub fn with_enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Sets the confidence below which findings are dropped.
    pub fn with_min_confidence(mut self, c: f64) -> Self {
        self.min_confidence = c;
        self
    }

    /// Sets the verdict a finding gives.
    pub fn with_action(mut self, v: crate::types::Verdict) -> Self {
        self.action = Some(v);
        self
    }
}

/// Per-category settings of the harmful-content scanner. In a config file:
///
/// ```toml
/// [output.harmful.hate_harassment]
/// min_confidence = 0.8
/// action = "sanitize"
///
/// [output.harmful.dangerous_medical]
/// enabled = false
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarmfulContentConfig {
    /// Encouraging self-harm or suicide, and self-harm methods.
    pub self_harm: HarmCategoryPolicy,
    /// Threats, incitement, and weapons or explosives instructions.
    pub violence_weapons: HarmCategoryPolicy,
    /// Instructions to make illegal drugs.
    pub drug_synthesis: HarmCategoryPolicy,
    /// Insults and abuse aimed at the reader, slurs, dehumanising a group.
    pub hate_harassment: HarmCategoryPolicy,
    /// Sexual content involving minors.
    pub sexual_minors: HarmCategoryPolicy,
    /// Malware and cyber-attack instructions.
    pub malware: HarmCategoryPolicy,
    /// Advice to stop medication, toxic "remedies", overdosing.
    pub dangerous_medical: HarmCategoryPolicy,
    /// With the prompt: report a completion that answers a harmful request
    /// without refusing (`complied_with_harmful_request`), and one that
    /// agrees with abuse in the prompt or ignores a self-harm disclosure.
    pub compliance: bool,
    /// The learned layer ([`crate::harmful_model`], `model/harmful.bin`):
    /// where the rules find nothing at medium or above, a reply whose
    /// P(harmful) reaches the threshold is a medium finding of the model's
    /// category (rule `model`).
    pub model: bool,
    /// P(harmful) the model reports at; unset: the model's own threshold
    /// (chosen at training for 2 % benign FPR on out-of-fold scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_threshold: Option<f64>,
}

impl Default for HarmfulContentConfig {
    fn default() -> Self {
        let on = HarmCategoryPolicy::default();
        HarmfulContentConfig {
            self_harm: on,
            violence_weapons: on,
            drug_synthesis: on,
            hate_harassment: on,
            sexual_minors: on,
            malware: on,
            dangerous_medical: on,
            compliance: true,
            model: DEFAULT_HARMFUL_MODEL,
            model_threshold: None,
        }
    }
}

/// Whether the learned harmful-response layer is on by default: off, as
/// its recall on a source group it was not trained on is at chance (see
/// docs/PERFORMANCE.md, "Harmful responses", for the held-out figures
/// this was decided by) and it costs ~5 µs per KiB of completion.
const DEFAULT_HARMFUL_MODEL: bool = false;

impl HarmfulContentConfig {
    /// Every category on, compliance signal on.
    pub fn new() -> Self {
        HarmfulContentConfig::default()
    }

    /// The settings of one category.
    pub fn policy(&self, c: crate::scanners::output::harmful::HarmCategory) -> &HarmCategoryPolicy {
        use crate::scanners::output::harmful::HarmCategory::*;
        match c {
            SelfHarm => &self.self_harm,
            ViolenceWeapons => &self.violence_weapons,
            DrugSynthesis => &self.drug_synthesis,
            HateHarassment => &self.hate_harassment,
            SexualMinors => &self.sexual_minors,
            Malware => &self.malware,
            DangerousMedical => &self.dangerous_medical,
        }
    }

    /// Replaces the settings of one category.
    pub fn with_category(mut self, c: crate::scanners::output::harmful::HarmCategory, p: HarmCategoryPolicy) -> Self {
        use crate::scanners::output::harmful::HarmCategory::*;
        let slot = match c {
            SelfHarm => &mut self.self_harm,
            ViolenceWeapons => &mut self.violence_weapons,
            DrugSynthesis => &mut self.drug_synthesis,
            HateHarassment => &mut self.hate_harassment,
            SexualMinors => &mut self.sexual_minors,
            Malware => &mut self.malware,
            DangerousMedical => &mut self.dangerous_medical,
        };
        *slot = p;
        self
    }

    /// Switches the compliance-vs-refusal signal.
    pub fn with_compliance(mut self, on: bool) -> Self {
        self.compliance = on;
        self
    }

    /// Switches the learned layer.
    pub fn with_model(mut self, on: bool) -> Self {
        self.model = on;
        self
    }

    /// Sets the P(harmful) the learned layer reports at.
    pub fn with_model_threshold(mut self, t: f64) -> Self {
        self.model_threshold = Some(t);
        self
    }

    /// Checks thresholds.
    pub fn validate(&self) -> Result<(), Error> {
        for c in crate::scanners::output::harmful::HarmCategory::ALL {
            let m = self.policy(c).min_confidence;
            if !(0.0..=1.0).contains(&m) || m.is_nan() {
                return Err(Error::Config(format!("output.harmful.{c}.min_confidence must be in [0, 1], got {m}")));
            }
        }
        if let Some(t) = self.model_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(Error::Config(format!("output.harmful.model_threshold must be in [0, 1], got {t}")));
        }
        Ok(())
    }
}

impl OutputValidationConfig {
    /// Switches the harmful-content scanner.
    pub fn with_harmful_content(mut self, on: bool) -> Self {
        self.harmful_content = on;
        self
    }

    /// Sets the harmful-content scanner's per-category settings.
    pub fn with_harmful(mut self, h: HarmfulContentConfig) -> Self {
        self.harmful = h;
        self
    }

    /// Switches the unsafe-code scanner.
    pub fn with_unsafe_code(mut self, on: bool) -> Self {
        self.unsafe_code = on;
        self
    }
}

/// The learned prompt-attack classifier. Off by default: on sources it was
/// not trained on it adds only a little recall to the rules so far (see
/// docs/PERFORMANCE.md, "Classifier"); on, it reports a calibrated
/// P(attack) that combines the text and the rule findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Run the classifier in `analyze_input`.
    pub enabled: bool,
    /// Report an attack when P(attack) reaches this; `None` uses the
    /// model's own threshold (chosen for a 1% benign false-positive rate
    /// on held-out dev data).
    pub threshold: Option<f64>,
}

/// Secrets and personal data in prompts: a user pasting an API key or a
/// customer's address into a prompt is data the operator wants to see
/// leave. `analyze_input` reports them as `secret_leak` / `sensitive_data`
/// findings (the same scanners `validate_output` runs, with the output
/// config's PII types); `action` is the verdict such a finding gives when
/// it passes its type's policy thresholds. The default reports without
/// acting (`allow`); `sanitize` passes the prompt on redacted, `block`
/// refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputDataConfig {
    /// Report API keys, tokens, private keys and other secrets in prompts.
    pub secrets: bool,
    /// Report personal data in prompts.
    pub pii: bool,
    /// The verdict a finding gives.
    pub action: crate::types::Verdict,
}

impl Default for InputDataConfig {
    fn default() -> Self {
        InputDataConfig { secrets: true, pii: true, action: crate::types::Verdict::Allow }
    }
}

impl InputDataConfig {
    /// Nothing reported.
    pub fn none() -> Self {
        InputDataConfig { secrets: false, pii: false, action: crate::types::Verdict::Allow }
    }

    /// Sets `secrets`.
    pub fn with_secrets(mut self, on: bool) -> Self {
        self.secrets = on;
        self
    }

    /// Sets `pii`.
    pub fn with_pii(mut self, on: bool) -> Self {
        self.pii = on;
        self
    }

    /// Sets `action`.
    pub fn with_action(mut self, v: crate::types::Verdict) -> Self {
        self.action = v;
        self
    }
}

/// How sanitizing rewrites text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SanitizeConfig {
    /// Keep the original values beside the placeholders so they can be restored.
    pub reversible: bool,
    /// Drop zero-width, bidi, tag and variation-selector characters.
    pub strip_invisible: bool,
    /// Produce sanitized text for every analysis, not only `sanitize` verdicts.
    pub always: bool,
}

impl Default for SanitizeConfig {
    fn default() -> Self {
        SanitizeConfig { reversible: false, strip_invisible: true, always: false }
    }
}

/// The engine's whole configuration: what to detect, how to normalize, and
/// what to do about each finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Run the prompt-injection rules on inputs.
    pub prompt_injection_detection: bool,
    /// Run the jailbreak rules on inputs.
    pub jailbreak_detection: bool,
    /// Report Unicode attacks (normalization itself always runs).
    pub unicode_attack_detection: bool,
    /// Run the output validators in `validate_output`.
    pub output_validation: bool,
    /// Texts longer than this are refused with [`Error::InputTooLarge`].
    pub max_input_bytes: usize,
    /// Attack-vector families.
    pub threat_model: ThreatModel,
    /// The learned classifier.
    pub classifier: ClassifierConfig,
    /// Output validators.
    pub output: OutputValidationConfig,
    /// Secrets and personal data in prompts.
    pub input_data: InputDataConfig,
    /// Verdict rules.
    pub policy: PolicyConfig,
    /// Sanitizer settings.
    pub sanitize: SanitizeConfig,
    /// The operating point of `analyze_context` (untrusted content).
    pub context: crate::context::ContextConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            prompt_injection_detection: true,
            jailbreak_detection: true,
            unicode_attack_detection: true,
            output_validation: true,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            threat_model: ThreatModel::default(),
            classifier: ClassifierConfig::default(),
            output: OutputValidationConfig::default(),
            input_data: InputDataConfig::default(),
            policy: PolicyConfig::default(),
            sanitize: SanitizeConfig::default(),
            context: crate::context::ContextConfig::default(),
        }
    }
}

impl SecurityConfig {
    /// Everything on, default policy.
    pub fn new() -> SecurityConfig {
        SecurityConfig::default()
    }

    /// Switches prompt-injection detection.
    pub fn with_prompt_injection_detection(mut self, on: bool) -> Self {
        self.prompt_injection_detection = on;
        self
    }

    /// Sets the operating point of `analyze_context`.
    pub fn with_context(mut self, c: crate::context::ContextConfig) -> Self {
        self.context = c;
        self
    }

    /// Switches jailbreak detection.
    pub fn with_jailbreak_detection(mut self, on: bool) -> Self {
        self.jailbreak_detection = on;
        self
    }

    /// Switches Unicode-attack reporting.
    pub fn with_unicode_attack_detection(mut self, on: bool) -> Self {
        self.unicode_attack_detection = on;
        self
    }

    /// Switches the output validators.
    pub fn with_output_validation(mut self, on: bool) -> Self {
        self.output_validation = on;
        self
    }

    /// Sets the largest accepted text.
    pub fn with_max_input_bytes(mut self, n: usize) -> Self {
        self.max_input_bytes = n;
        self
    }

    /// Sets the attack-vector model.
    pub fn with_threat_model(mut self, m: ThreatModel) -> Self {
        self.threat_model = m;
        self
    }

    /// Sets the classifier.
    pub fn with_classifier(mut self, c: ClassifierConfig) -> Self {
        self.classifier = c;
        self
    }

    /// Sets the output validators.
    pub fn with_output_config(mut self, o: OutputValidationConfig) -> Self {
        self.output = o;
        self
    }

    /// Sets what `analyze_input` reports of secrets and personal data.
    pub fn with_input_data(mut self, d: InputDataConfig) -> Self {
        self.input_data = d;
        self
    }

    /// Sets the policy.
    pub fn with_policy(mut self, p: PolicyConfig) -> Self {
        self.policy = p;
        self
    }

    /// Sets the sanitizer.
    pub fn with_sanitize(mut self, s: SanitizeConfig) -> Self {
        self.sanitize = s;
        self
    }

    /// Parses a TOML document.
    pub fn from_toml_str(s: &str) -> Result<SecurityConfig, Error> {
        let c: SecurityConfig = toml::from_str(s).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Parses a YAML document.
    pub fn from_yaml_str(s: &str) -> Result<SecurityConfig, Error> {
        let c: SecurityConfig = serde_norway::from_str(s).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a `.toml`, `.yaml`/`.yml` or `.json` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<SecurityConfig, Error> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parsed = match ext {
            "toml" => Self::from_toml_str(&text),
            "yaml" | "yml" => Self::from_yaml_str(&text),
            "json" => serde_json::from_str::<SecurityConfig>(&text)
                .map_err(|e| Error::Config(e.to_string()))
                .and_then(|c| c.validate().map(|_| c)),
            _ => Err(Error::Config("config file must end in .toml, .yaml, .yml or .json".into())),
        };
        parsed.map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Checks values serde cannot: ranges and thresholds.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_input_bytes == 0 {
            return Err(Error::Config("max_input_bytes must be at least 1".into()));
        }
        if let Some(t) = self.classifier.threshold
            && (!(0.0..=1.0).contains(&t) || t.is_nan())
        {
            return Err(Error::Config(format!("classifier.threshold must be in [0, 1], got {t}")));
        }
        let t = self.output.leak_overlap_threshold;
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(Error::Config(format!("output.leak_overlap_threshold must be in [0, 1], got {t}")));
        }
        self.output.harmful.validate()?;
        let t = self.output.entity_min_confidence;
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(Error::Config(format!("output.entity_min_confidence must be in [0, 1], got {t}")));
        }
        self.context.validate()?;
        self.policy.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml_yaml_and_json() {
        let c = SecurityConfig::default();
        let t = toml::to_string(&c).unwrap_or_default();
        assert_eq!(SecurityConfig::from_toml_str(&t).ok(), Some(c.clone()), "toml:\n{t}");
        let y = serde_norway::to_string(&c).unwrap_or_default();
        assert_eq!(SecurityConfig::from_yaml_str(&y).ok(), Some(c.clone()), "yaml:\n{y}");
        let j = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(serde_json::from_str::<SecurityConfig>(&j).ok(), Some(c));
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        let e = SecurityConfig::from_toml_str("prompt_injection_detecton = true").err().map(|e| e.to_string());
        assert!(e.as_deref().unwrap_or("").contains("prompt_injection_detecton"), "{e:?}");
        let e = SecurityConfig::from_yaml_str("threat_model:\n  jailbreak:\n    dan_atacks: false\n")
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().unwrap_or("").contains("dan_atacks"), "{e:?}");
    }

    #[test]
    fn published_builder_names_work() {
        let c = SecurityConfig::new()
            .with_prompt_injection_detection(true)
            .with_jailbreak_detection(false)
            .with_unicode_attack_detection(true)
            .with_output_validation(true);
        assert!(!c.jailbreak_detection);
        let m = ThreatModel::new().with_jailbreak_threat(JailbreakThreat::new().with_dan_attacks(false));
        assert!(!m.enabled_families().contains("jb.dan_attacks"));
        assert!(m.enabled_families().contains("pi.direct_injection"));
    }

    #[test]
    fn bad_threshold_is_rejected() {
        let e = SecurityConfig::from_toml_str("[output]\nleak_overlap_threshold = 3.0");
        assert!(e.is_err());
    }
}

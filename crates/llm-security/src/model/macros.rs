//! The two shapes every section of the security model takes, as macros:
//! an enum of controls whose variants hold switches (`control_enum!`), and
//! a section with one optional slot per builder (`section!`). Sections with
//! plain switches (`switches!`) keep each one optional, so that an unset
//! switch leaves the engine as its config says.

/// An enum of controls: each variant holds named switches. In a profile
/// file the variant is a key (`pattern_validation = { regex_patterns = true,
/// … }`) and every switch of the variant must be given: a missing switch is
/// an error naming it, as an unknown one is.
macro_rules! control_enum {
    (
        $(#[$meta:meta])*
        $Enum:ident {
            $( $(#[$vmeta:meta])* $Variant:ident = $key:literal { $( $field:ident ),* $(,)? } ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub enum $Enum {
            $(
                $(#[$vmeta])*
                #[serde(rename = $key)]
                $Variant {
                    $(
                        #[doc = concat!("The `", stringify!($field), "` switch: what it does is in the flag table of docs/SECURITY_MODEL.md and [`disposition`](crate::model::disposition).")]
                        $field: bool,
                    )*
                },
            )*
        }

        impl $Enum {
            /// The variant's key in profile files.
            pub fn variant_key(&self) -> &'static str {
                match self {
                    $( $Enum::$Variant { .. } => $key, )*
                }
            }

            /// `(name, on)` for every switch of the variant, in declaration order.
            pub fn flags(&self) -> Vec<(&'static str, bool)> {
                match self {
                    $( $Enum::$Variant { $( $field ),* } => vec![ $( (stringify!($field), *$field) ),* ], )*
                }
            }

            /// The variant named `key` with every switch set to `on`.
            pub fn every(key: &str, on: bool) -> Option<Self> {
                match key {
                    $( $key => Some($Enum::$Variant { $( $field: on ),* }), )*
                    _ => None,
                }
            }
        }
    };
}

/// A section of the profile: one optional slot per builder, each expecting
/// one variant of the section's control enum. A slot holding another
/// variant is reported by [`SecurityProfile::check`](crate::SecurityProfile::check).
macro_rules! section {
    (
        $(#[$meta:meta])*
        $Name:ident ($key:literal) : $Enum:ident {
            $( $slot:ident => $with:ident : $expected:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $Name {
            $(
                #[doc = concat!("Set by [`", stringify!($with), "`](Self::", stringify!($with), "); holds the `", $expected, "` variant.")]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $slot: Option<$Enum>,
            )*
        }

        impl $Name {
            /// Nothing set: the engine runs as its config says.
            pub fn new() -> Self {
                Self::default()
            }

            $(
                #[doc = concat!("Sets the `", stringify!($slot), "` slot.")]
                pub fn $with(mut self, control: $Enum) -> Self {
                    self.$slot = Some(control);
                    self
                }
            )*

            /// Every slot filled with its expected variant, every switch `on`.
            pub fn every(on: bool) -> Self {
                $Name { $( $slot: $Enum::every($expected, on), )* }
            }

            pub(crate) fn visit(&self, out: &mut crate::model::FlagSet) {
                $(
                    if let Some(c) = &self.$slot {
                        out.slot($key, stringify!($slot), $expected, c.variant_key(), &c.flags());
                    }
                )*
            }
        }
    };
}

/// A section of plain switches, each optional (unset: no effect).
macro_rules! switches {
    (
        $(#[$meta:meta])*
        $Name:ident ($key:literal) { $( $(#[$fmeta:meta])* $field:ident => $with:ident ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $Name {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<bool>,
            )*
        }

        impl $Name {
            /// Nothing set: the engine runs as its config says.
            pub fn new() -> Self {
                Self::default()
            }

            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $with(mut self, on: bool) -> Self {
                    self.$field = Some(on);
                    self
                }
            )*

            /// Every switch set to `on`.
            pub fn every(on: bool) -> Self {
                $Name { $( $field: Some(on), )* }
            }

            pub(crate) fn visit(&self, out: &mut crate::model::FlagSet) {
                $(
                    if let Some(on) = self.$field {
                        out.flag(concat!($key, ".", stringify!($field)), on);
                    }
                )*
            }
        }
    };
}

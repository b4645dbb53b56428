//! Each wire code declared once. A tag or mode code is the discriminant of a fieldless
//! `#[repr(u8)]` enum, written in one place: the compiler refuses a code given twice (E0081),
//! encoding is the cast, and decoding searches the generated list of variants, so no second
//! table of numbers exists to drift from the first.

/// Declares a fieldless enum whose variants are wire codes (`Variant = code`), with `ALL` (every
/// variant, in declaration order), `code` and `from_code` (`None` for a code no variant has).
/// Attributes (doc comments, derives beyond the four every code enum has) pass through.
#[macro_export]
macro_rules! wire_codes {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The byte on the wire.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The variant with this code, if any.
            pub fn from_code(code: u8) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }
    };
}

/// For the tests of a code enum (here and in the helper): every variant round-trips through its
/// code, no two share one, and every other byte decodes to nothing.
pub fn assert_codes<T: Copy + PartialEq + std::fmt::Debug>(
    all: &[T],
    code: impl Fn(T) -> u8,
    from_code: impl Fn(u8) -> Option<T>,
) {
    let mut seen = std::collections::HashSet::new();
    for &v in all {
        assert!(seen.insert(code(v)), "{v:?} shares its code {}", code(v));
        assert_eq!(from_code(code(v)), Some(v), "{v:?}");
    }
    for byte in 0..=u8::MAX {
        assert_eq!(from_code(byte).is_some(), seen.contains(&byte), "code {byte}");
    }
}

#[cfg(test)]
mod tests {
    crate::wire_codes! {
        enum Sample {
            A = 3,
            B = 0,
            C = 255,
        }
    }

    #[test]
    fn codes_round_trip_and_other_bytes_decode_to_nothing() {
        super::assert_codes(Sample::ALL, Sample::code, Sample::from_code);
        assert_eq!(Sample::ALL, &[Sample::A, Sample::B, Sample::C]);
        assert_eq!(Sample::from_code(1), None);
    }
}

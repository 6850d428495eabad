//! What is wrong with some input, field by field: every layer that validates a form (the
//! accounts' user form, the registry's reports, activations and sellers) reports with
//! [`FieldErrors`], and the API renders it as one problem listing every field, so a clerk
//! fixes the form in one round trip.

/// `(field path, what is wrong)` pairs; empty when the form is valid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    /// Notes what is wrong with `field`.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push((field.into(), reason.into()));
    }

    /// `Ok(())` when no field was wrong.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

//! Reading create/update bodies with DRF field rules.

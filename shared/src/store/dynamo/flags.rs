//! Flags, activity and counters.

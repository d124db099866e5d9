//! napi binding placeholder (being written).

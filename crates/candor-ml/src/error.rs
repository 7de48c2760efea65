/// Everything that can go wrong in model code. Each variant has a stable code.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MlError {
    #[error("{0}")]
    Csv(String),
    #[error("{0}")]
    Target(String),
    #[error("{0}")]
    Column(String),
    #[error("{0}")]
    Value(String),
    #[error("{0}")]
    ModelFormat(String),
    #[error("{0}")]
    Params(String),
}

impl MlError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MlError::Csv(_) => "csv_invalid",
            MlError::Target(_) => "target_invalid",
            MlError::Column(_) => "column_invalid",
            MlError::Value(_) => "value_invalid",
            MlError::ModelFormat(_) => "model_format_invalid",
            MlError::Params(_) => "params_invalid",
        }
    }
}

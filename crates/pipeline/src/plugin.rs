//! Operations written in Rust (feature `runtime`): implement [`OperationPlugin`],
//! register it in [`Plugins`], and pipeline files may name it like a built-in
//! (`- mask_email` or `- mask_email: {field: email}`). `examples/custom_operation.rs`
//! shows one end to end.

use std::sync::Arc;

use crate::builtins::RecordFn;
use crate::spec::Value;

/// A record operation registered by name.
pub trait OperationPlugin: Send + Sync + 'static {
    /// The name pipeline files use.
    fn name(&self) -> &str;

    /// The record function for one use of the operation, from its parameters (in file
    /// order); an error is reported at the operation's place in the file. The function
    /// returns the record to pass on, none to drop it, or an error that sends it to the
    /// dead-letter topic with the reason.
    fn build(&self, params: &[(String, Value)]) -> Result<RecordFn, String>;
}

/// The registered operations.
#[derive(Clone, Default)]
pub struct Plugins {
    operations: Vec<Arc<dyn OperationPlugin>>,
}

impl Plugins {
    /// No plugins.
    pub fn new() -> Self {
        Plugins::default()
    }

    /// Registers `op` (a later registration of the same name wins).
    pub fn register(mut self, op: impl OperationPlugin) -> Self {
        self.operations.retain(|o| o.name() != op.name());
        self.operations.push(Arc::new(op));
        self
    }

    /// The registered names (for [`crate::parse_with`]).
    pub fn names(&self) -> Vec<String> {
        self.operations
            .iter()
            .map(|o| o.name().to_string())
            .collect()
    }

    /// The operation named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn OperationPlugin>> {
        self.operations.iter().find(|o| o.name() == name)
    }
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

//! Errors from loading and running a scenario script, as miette diagnostics that point into the
//! script's source: file, line, column, the offending line with the span marked, and a hint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceOffset, SourceSpan};
use rhai::{EvalAltResult, ParseError, Position};

/// A script that could not be read, compiled, set up or run. Boxed, so that results carrying it
/// stay small on the per-event path.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(transparent)]
#[diagnostic(transparent)]
pub struct ScriptError(Box<ScriptErrorKind>);

impl From<ScriptErrorKind> for ScriptError {
    fn from(kind: ScriptErrorKind) -> Self {
        ScriptError(Box::new(kind))
    }
}

/// The kinds of [`ScriptError`].
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ScriptErrorKind {
    /// The script file could not be read.
    #[error("cannot read script {}: {source}", path.display())]
    #[diagnostic(code(sim::script::read))]
    Read {
        /// The script.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The script does not compile.
    #[error("syntax error in {location}: {message}")]
    #[diagnostic(code(sim::script::syntax))]
    Syntax {
        /// What the parser said.
        message: String,
        /// `file:line:column`.
        location: String,
        /// The script's text.
        #[source_code]
        src: NamedSource<Arc<str>>,
        /// Where in it.
        #[label("here")]
        span: Option<SourceSpan>,
    },
    /// A script function failed while running.
    #[error("{function}() failed at {location}: {message}")]
    #[diagnostic(code(sim::script::runtime))]
    Runtime {
        /// The function the engine called.
        function: String,
        /// What went wrong.
        message: String,
        /// `file:line:column`, or the file alone when the position is unknown.
        location: String,
        /// The script's text.
        #[source_code]
        src: NamedSource<Arc<str>>,
        /// Where in it.
        #[label("{message}")]
        span: Option<SourceSpan>,
        /// A hint, when one helps.
        #[help]
        help: Option<String>,
    },
    /// A function the contract requires is missing.
    #[error("script {} has no `{signature}` function", path.display())]
    #[diagnostic(code(sim::script::missing_function), help("{help}"))]
    MissingFunction {
        /// The script.
        path: PathBuf,
        /// The function, e.g. `event(ctx)`.
        signature: String,
        /// How to add it.
        help: String,
    },
    /// A contract function is defined with parameters the engine never calls it with.
    #[error("{location}: `fn {function}` takes {found} parameters, so the engine would never call it; it calls {expected}")]
    #[diagnostic(code(sim::script::signature))]
    Signature {
        /// The function.
        function: String,
        /// How many parameters it takes.
        found: usize,
        /// The signatures the engine calls.
        expected: String,
        /// `file:line:column` of the function.
        location: String,
        /// The script's text.
        #[source_code]
        src: NamedSource<Arc<str>>,
        /// The function's definition.
        #[label("defined here")]
        span: Option<SourceSpan>,
    },
    /// A follow-up is scheduled under a name no function of the script has.
    #[error("{location}: {message}")]
    #[diagnostic(
        code(sim::script::unknown_follow_up),
        help("a follow-up calls a function of the top-level script that takes (ctx, data)")
    )]
    UnknownFollowUp {
        /// What is wrong, with the nearest name.
        message: String,
        /// `file:line:column` of the name.
        location: String,
        /// The script's text.
        #[source_code]
        src: NamedSource<Arc<str>>,
        /// The name.
        #[label("no such function")]
        span: Option<SourceSpan>,
    },
    /// A function returned a value of the wrong shape.
    #[error("{function}() at {location} returned {found}; expected {expected}")]
    #[diagnostic(code(sim::script::bad_return))]
    BadReturn {
        /// The function.
        function: String,
        /// What it returned.
        found: String,
        /// What the contract expects.
        expected: String,
        /// `file:line:column` of the function.
        location: String,
        /// The script's text.
        #[source_code]
        src: NamedSource<Arc<str>>,
        /// The function's definition.
        #[label("defined here")]
        span: Option<SourceSpan>,
    },
}

/// Rhai built-ins scripts often call, for suggestions next to the native helpers.
const BUILTINS: &[&str] = &[
    "push",
    "len",
    "contains",
    "keys",
    "values",
    "round",
    "floor",
    "ceiling",
    "to_int",
    "to_float",
    "to_string",
    "ln",
    "sqrt",
    "abs",
    "min",
    "max",
    "sub_string",
    "split",
    "index_of",
    "starts_with",
    "ends_with",
    "type_of",
    "print",
    "debug",
];

/// The script's text and name, to point errors into.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The script's path as the user gave it.
    pub path: PathBuf,
    /// Its text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// `file:line:column` of `position`, or the file alone.
    pub fn location(&self, position: Position) -> String {
        match (position.line(), position.position()) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.path.display()),
            (Some(line), None) => format!("{}:{line}", self.path.display()),
            _ => self.path.display().to_string(),
        }
    }

    /// A one-character span at `position`, when it has one.
    pub fn span(&self, position: Position) -> Option<SourceSpan> {
        let line = position.line()?;
        let column = position.position().unwrap_or(1);
        let offset = SourceOffset::from_location(&*self.text, line, column);
        Some(SourceSpan::new(offset, 1))
    }

    /// The known function whose name is nearest to the one in `signature` (`pik (array)`), if
    /// one is close enough to be a likely typo.
    fn nearest_function(&self, signature: &str) -> Option<String> {
        let wanted = signature.split(['(', ' ']).next()?.trim();
        let script_functions = self.text.lines().filter_map(|line| {
            let rest = line.trim_start().strip_prefix("fn ")?;
            rest.split('(').next().map(str::trim)
        });
        let known = super::api::HELPERS
            .iter()
            .copied()
            .chain(BUILTINS.iter().copied())
            .chain(script_functions);
        nearest(wanted, known).map(str::to_string)
    }

    /// The source of a module this script imports, to point errors into it.
    fn module_source(&self, import: &str) -> Option<SourceFile> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let path = super::imports::module_file(dir, import);
        let text = std::fs::read_to_string(&path).ok()?;
        Some(SourceFile {
            path,
            text: Arc::from(text),
        })
    }

    fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.path.display().to_string(), self.text.clone())
    }

    /// The diagnostic for a parse error.
    pub fn syntax_error(&self, err: &ParseError) -> ScriptError {
        ScriptErrorKind::Syntax {
            message: err.err_type().to_string(),
            location: self.location(err.position()),
            src: self.named(),
            span: self.span(err.position()),
        }
        .into()
    }

    /// The diagnostic for an error raised while `function` ran, pointing at its innermost cause,
    /// or at `fallback` (the function's definition) when Rhai gives no position, as for a
    /// runaway loop stopped by the operation limit.
    pub fn runtime_error(
        &self,
        function: &str,
        err: Box<EvalAltResult>,
        fallback: Position,
    ) -> ScriptError {
        let outer = err.position();
        let mut inner = err;
        // The innermost module the error happened in, if any: its position is in that file.
        let mut module = None;
        loop {
            match *inner {
                EvalAltResult::ErrorInFunctionCall(_, source, nested, _) => {
                    if !source.is_empty() {
                        module = Some(source);
                    }
                    inner = nested;
                }
                EvalAltResult::ErrorInModule(path, nested, _) => {
                    module = Some(path);
                    inner = nested;
                }
                other => {
                    inner = Box::new(other);
                    break;
                }
            }
        }
        if let Some(file) = module.and_then(|m| self.module_source(&m)) {
            return file.runtime_error(function, inner, Position::NONE);
        }
        let position = [inner.take_position(), outer, fallback]
            .into_iter()
            .find(|position| !position.is_none())
            .unwrap_or(Position::NONE);
        let help = match &*inner {
            EvalAltResult::ErrorTooManyOperations(_) => Some(
                "the script ran past its operation limit: look for an endless loop".to_string(),
            ),
            EvalAltResult::ErrorStackOverflow(_) => {
                Some("the script recursed past its call-depth limit".to_string())
            }
            EvalAltResult::ErrorDataTooLarge(..) => {
                Some("a string, array or map grew past the sandbox's size limit".to_string())
            }
            EvalAltResult::ErrorAssignmentToConstant(..)
            | EvalAltResult::ErrorNonPureMethodCallOnConstant(..) => Some(
                "`ctx` and the state `setup` returned are read-only while events are made (every \
                 worker reads the same state): keep what changes with remember(key, value); a copy \
                 in a variable (`let c = ctx.state.x;`) can be changed"
                    .to_string(),
            ),
            EvalAltResult::ErrorFunctionNotFound(signature, _) => {
                Some(match self.nearest_function(signature) {
                    Some(name) => format!("did you mean `{name}`? Native helpers are listed in docs/scripting.md"),
                    None => "native helpers are listed in docs/scripting.md; check the name and argument types".to_string(),
                })
            }
            _ => None,
        };
        ScriptErrorKind::Runtime {
            function: function.to_string(),
            message: inner.to_string(),
            location: self.location(position),
            src: self.named(),
            span: self.span(position),
            help,
        }
        .into()
    }

    /// The diagnostic for a function whose result has the wrong shape.
    pub fn bad_return(
        &self,
        function: &str,
        position: Position,
        found: &str,
        expected: &str,
    ) -> ScriptError {
        ScriptErrorKind::BadReturn {
            function: function.to_string(),
            found: found.to_string(),
            expected: expected.to_string(),
            location: self.location(position),
            src: self.named(),
            span: self.span(position),
        }
        .into()
    }

    /// The diagnostic for a contract function the engine would never call.
    pub fn bad_signature(
        &self,
        function: &str,
        position: Position,
        found: usize,
        expected: &str,
    ) -> ScriptError {
        ScriptErrorKind::Signature {
            function: function.to_string(),
            found,
            expected: expected.to_string(),
            location: self.location(position),
            src: self.named(),
            span: self.span(position),
        }
        .into()
    }

    /// The diagnostic for a follow-up scheduled at `position` under a name with no function.
    pub fn unknown_follow_up(&self, position: Position, message: String) -> ScriptError {
        ScriptErrorKind::UnknownFollowUp {
            message,
            location: self.location(position),
            src: self.named(),
            span: self.span(position),
        }
        .into()
    }

    /// The diagnostic for a missing contract function.
    pub fn missing(&self, signature: &str, help: &str) -> ScriptError {
        ScriptErrorKind::MissingFunction {
            path: self.path.clone(),
            signature: signature.to_string(),
            help: help.to_string(),
        }
        .into()
    }
}

/// The name among `known` nearest to `wanted`, if one is close enough to be a likely typo
/// (within a third of its length): what "did you mean" suggests.
pub fn nearest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .filter(|name| *name != wanted)
        .map(|name| (strsim::levenshtein(wanted, name), name))
        .filter(|(distance, name)| *distance <= (name.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// The error for a script file that cannot be read.
pub fn read_error(path: &Path, source: std::io::Error) -> ScriptError {
    ScriptErrorKind::Read {
        path: path.to_path_buf(),
        source,
    }
    .into()
}

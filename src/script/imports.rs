//! The modules a script imports, found by reading its `import "path" as name;` statements.
//!
//! The engine calls script functions without running the script's top level, so the top level's
//! `import` statements never run; instead each imported module is resolved once at load and
//! registered under its alias. The same list tells hot reload which files to watch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

/// An imported module's source, read once, so that every worker compiles the same text even if
/// the file is saved meanwhile.
#[derive(Debug, Clone)]
pub struct ModuleSource {
    /// The `import` statement.
    pub import: Import,
    /// The file's text.
    pub text: Arc<str>,
}

impl ModuleSource {
    /// Reads the module `import` names, relative to `dir`.
    pub fn read(dir: &Path, import: Import) -> Result<Self, Box<EvalAltResult>> {
        let file = module_file(dir, &import.path);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Self {
                import,
                text: Arc::from(text),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Box::new(
                EvalAltResult::ErrorModuleNotFound(import.path.clone(), import.position()),
            )),
            Err(err) => Err(Box::new(EvalAltResult::ErrorInModule(
                import.path.clone(),
                format!("cannot read {}: {err}", file.display()).into(),
                import.position(),
            ))),
        }
    }

    /// Compiles the module and runs its top level, as Rhai's file resolver would (errors are
    /// wrapped the same way, so they point into the module's file).
    pub fn compile(&self, engine: &Engine) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let path = &self.import.path;
        let in_module = |err| {
            Box::new(EvalAltResult::ErrorInModule(
                path.clone(),
                err,
                self.import.position(),
            ))
        };
        let mut ast = engine
            .compile(&*self.text)
            .map_err(|err| in_module(err.into()))?;
        ast.set_source(path.as_str());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(module.into())
    }
}

impl Import {
    /// Where the statement is in the script.
    pub fn position(&self) -> Position {
        Position::new(self.line.try_into().unwrap_or(u16::MAX), 1)
    }
}

/// One `import "path" as alias;` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The path as written (without `.rhai`), relative to the script's folder.
    pub path: String,
    /// The name the script uses for it.
    pub alias: String,
    /// 1-based line of the statement.
    pub line: usize,
}

/// The top-level imports of `source`.
pub fn imports(source: &str) -> Vec<Import> {
    source
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let rest = line.trim_start().strip_prefix("import")?;
            let rest = rest.trim_start().strip_prefix('"')?;
            let (path, rest) = rest.split_once('"')?;
            let rest = rest.trim_start().strip_prefix("as")?;
            let alias: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!alias.is_empty()).then(|| Import {
                path: path.to_string(),
                alias,
                line: index + 1,
            })
        })
        .collect()
}

/// The file an import refers to. Rhai resolves every import, including those inside modules,
/// against the folder of the top-level script, so `dir` is always that folder.
pub fn module_file(dir: &Path, import: &str) -> PathBuf {
    let path = dir.join(import);
    if path.extension().is_some() {
        path
    } else {
        path.with_extension("rhai")
    }
}

/// The script and every module it imports, directly or through other modules.
pub fn script_files(script: &Path) -> Vec<PathBuf> {
    let dir = script.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = vec![script.to_path_buf()];
    let mut next = 0;
    while next < files.len() {
        let file = files[next].clone();
        next += 1;
        let Ok(source) = std::fs::read_to_string(&file) else {
            continue;
        };
        for import in imports(&source) {
            let module = module_file(&dir, &import.path);
            if !files.contains(&module) {
                files.push(module);
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_imports_with_their_alias_and_line() {
        let source = "// header\nimport \"lib/money\" as money;\n  import \"pools\" as p;\nfn event(ctx) { #{} }";
        let found = imports(source);
        assert_eq!(
            found,
            vec![
                Import {
                    path: "lib/money".into(),
                    alias: "money".into(),
                    line: 2
                },
                Import {
                    path: "pools".into(),
                    alias: "p".into(),
                    line: 3
                },
            ]
        );
    }

    #[test]
    fn script_files_follow_imports_of_imports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("main.rhai"), "import \"lib/a\" as a;\n").unwrap();
        // As Rhai resolves it: relative to the top-level script's folder, even inside lib/.
        std::fs::write(dir.path().join("lib/a.rhai"), "import \"lib/b\" as b;\n").unwrap();
        std::fs::write(dir.path().join("lib/b.rhai"), "fn f() { 1 }\n").unwrap();
        let files = script_files(&dir.path().join("main.rhai"));
        assert_eq!(files.len(), 3);
        assert!(files.contains(&dir.path().join("lib/b.rhai")));
    }
}

//! From Rhai's syntax tree to [`Node`]s: variables become slots of the function's frame, calls
//! are resolved to a compiled function or a native helper, and anything else is refused (the
//! function is then left to the interpreter).

use std::collections::{BTreeMap, HashMap};

use rhai::{ASTFlags, ASTNode, Dynamic, Expr, FnCallExpr, Identifier, ImmutableString, Stmt, AST};

use super::natives::{self, Native};

/// A compiled expression or statement.
#[derive(Debug, Clone)]
pub enum Node {
    /// A constant.
    Const(Dynamic),
    /// A variable: its slot in the frame.
    Var(usize),
    /// `let`: evaluates into a slot; worth `()`.
    Let(usize, Box<Node>),
    /// A block: its statements' value is the last one's (`()` when empty).
    Block(Vec<Node>),
    /// `if cond { .. } else { .. }`.
    If(Box<Node>, Box<Node>, Box<Node>),
    /// `return value`.
    Return(Box<Node>),
    /// An array literal.
    Array(Vec<Node>),
    /// A map literal: a template with every key, each entry's value in the order written, and
    /// for each key of the template in its (sorted) order, which entry gives its value.
    Map(rhai::Map, Vec<Node>, Vec<usize>),
    /// A string with `${...}` parts.
    Interpolated(Vec<Node>),
    /// `value.name`.
    Property(Box<Node>, ImmutableString),
    /// `value[index]`.
    Index(Box<Node>, Box<Node>),
    /// A native helper or operator, arguments in order (for a method, the object first).
    Native(Native, Vec<Node>),
    /// A compiled script function, by index.
    Script(usize, Vec<Node>),
    /// `a && b && ...`.
    And(Vec<Node>),
    /// `a || b || ...`.
    Or(Vec<Node>),
    /// `a ?? b ?? ...`.
    Coalesce(Vec<Node>),
    /// `switch value { case => .., _ => default }` with constant cases and no conditions: each
    /// case under Rhai's hash of its value (see [`switch_hash`]).
    Switch(Box<Node>, HashMap<u64, Node>, Box<Node>),
}

/// Rhai's hash of a `switch` value (`calc_switch_value_hash`, not exported): the value hashed
/// with ahash's default hasher, which is Rhai's when no hashing seed is configured.
pub fn switch_hash(value: &Dynamic) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = ahash::AHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Whether [`switch_hash`] agrees with Rhai's own hashes, read off a switch Rhai compiled; if
/// not (another Rhai, a hashing seed), no `switch` is compiled.
static HASHES_AGREE: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    let Ok(ast) = rhai::Engine::new().compile(r#"fn f(x) { switch x { "probe" => 1, 7 => 2 } }"#)
    else {
        return false;
    };
    let mut agree = false;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Switch(switch, _))) = path.last() {
            let cases = &switch.1.cases;
            agree = cases.len() == 2
                && cases.contains_key(&switch_hash(&Dynamic::from("probe")))
                && cases.contains_key(&switch_hash(&Dynamic::from_int(7)));
        }
        true
    });
    agree
});

/// One compiled script function.
#[derive(Debug)]
pub struct Function {
    /// Its name.
    pub name: ImmutableString,
    /// Its parameters: the first slots of its frame.
    pub params: usize,
    /// Slots its frame needs.
    pub slots: usize,
    /// Its body; `None` when it could not be compiled.
    pub body: Option<Node>,
    /// The script functions it calls.
    calls: Vec<usize>,
}

/// The compiled functions of one script.
#[derive(Debug)]
pub struct Compiled {
    /// Every script function, compiled or not, by index.
    pub functions: Vec<Function>,
    /// Whether each function and everything it calls is compiled.
    runnable: Vec<bool>,
}

impl Compiled {
    /// Compiles every function of `ast` that can be.
    pub fn from_ast(ast: &AST) -> Self {
        let defs: Vec<_> = ast.iter_fn_def().collect();
        let mut index: HashMap<(String, usize), usize> = HashMap::new();
        for (i, def) in defs.iter().enumerate() {
            index.insert((def.name.to_string(), def.params.len()), i);
        }
        let bodies = bodies(ast);
        let functions = defs
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let mut compiler = Compiler {
                    functions: &index,
                    scopes: vec![def.params.iter().map(|p| p.to_string()).collect()],
                    slots: def.params.len(),
                    calls: Vec::new(),
                };
                let usable = def.this_type.is_none();
                let body = bodies
                    .get(&i)
                    .filter(|_| usable)
                    .and_then(|statements| compiler.block(statements));
                Function {
                    name: def.name.clone(),
                    params: def.params.len(),
                    slots: compiler.slots,
                    body,
                    calls: compiler.calls,
                }
            })
            .collect();
        let mut compiled = Self {
            runnable: Vec::new(),
            functions,
        };
        compiled.runnable = compiled.closure();
        compiled
    }

    /// The index of `name` with `arity` parameters, if it and everything it calls is compiled.
    pub fn runnable(&self, name: &str, arity: usize) -> Option<usize> {
        self.functions
            .iter()
            .position(|f| f.name == name && f.params == arity)
            .filter(|&i| self.runnable[i])
    }

    /// Which functions are compiled along with everything they call, transitively.
    fn closure(&self) -> Vec<bool> {
        let mut runnable: Vec<bool> = self.functions.iter().map(|f| f.body.is_some()).collect();
        loop {
            let mut changed = false;
            for (i, function) in self.functions.iter().enumerate() {
                if runnable[i] && function.calls.iter().any(|&c| !runnable[c]) {
                    runnable[i] = false;
                    changed = true;
                }
            }
            if !changed {
                return runnable;
            }
        }
    }
}

/// The top-level statements of each function's body, by the function's index in
/// `ast.iter_fn_def()`. Rhai does not expose a function's body, but its walk visits the bodies'
/// statements after the script's, and each function knows where its body starts and ends.
fn bodies(ast: &AST) -> HashMap<usize, Vec<Stmt>> {
    let ranges: Vec<_> = ast
        .iter_fn_def()
        .map(|def| (def.body.start_position(), def.body.end_position()))
        .collect();
    let mut bodies: HashMap<usize, Vec<Stmt>> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(stmt)] = path {
            let at = stmt.position();
            // The innermost body holding it: a closure's body lies inside its function's.
            let holder = ranges
                .iter()
                .enumerate()
                .filter(|(_, &(start, end))| !at.is_none() && start <= at && at <= end)
                .max_by_key(|(_, &(start, _))| start)
                .map(|(i, _)| i);
            if let Some(i) = holder {
                bodies.entry(i).or_default().push((*stmt).clone());
            }
        }
        true
    });
    bodies
}

/// Compiles one function.
struct Compiler<'a> {
    /// The script's functions by name and arity.
    functions: &'a HashMap<(String, usize), usize>,
    /// The names in scope, innermost last; a name's slot is its place in the frame.
    scopes: Vec<Vec<String>>,
    /// Slots used so far.
    slots: usize,
    calls: Vec<usize>,
}

impl Compiler<'_> {
    fn lookup(&self, name: &str) -> Option<usize> {
        // Slots are handed out in order, so a name's slot is its index counting every scope.
        let mut base = self.slots;
        for scope in self.scopes.iter().rev() {
            base -= scope.len();
            if let Some(i) = scope.iter().rposition(|n| n == name) {
                return Some(base + i);
            }
        }
        None
    }

    fn block(&mut self, statements: &[Stmt]) -> Option<Node> {
        self.scopes.push(Vec::new());
        let nodes: Option<Vec<Node>> = statements.iter().map(|s| self.stmt(s)).collect();
        // Slots of an inner scope are not reused: a frame is small, and reuse would need care.
        let scope = self.scopes.pop().unwrap_or_default();
        if let Some(outer) = self.scopes.last_mut() {
            outer.extend(scope.into_iter().map(|_| String::new()));
        }
        Some(Node::Block(nodes?))
    }

    fn stmt(&mut self, stmt: &Stmt) -> Option<Node> {
        match stmt {
            Stmt::Noop(_) => Some(Node::Const(Dynamic::UNIT)),
            Stmt::Expr(expr) => self.expr(expr),
            Stmt::FnCall(call, _) => self.call(call),
            Stmt::Block(block) => self.block(block.statements()),
            Stmt::If(flow, _) => Some(Node::If(
                Box::new(self.expr(&flow.expr)?),
                Box::new(self.block(flow.body.statements())?),
                Box::new(self.block(flow.branch.statements())?),
            )),
            Stmt::Var(var, _, _) => {
                let value = self.expr(&var.1)?;
                let slot = self.slots;
                self.slots += 1;
                self.scopes.last_mut()?.push(var.0.name.to_string());
                Some(Node::Let(slot, Box::new(value)))
            }
            Stmt::Switch(switch, _) => {
                let (value, collection) = &**switch;
                if !collection.ranges.is_empty() || !*HASHES_AGREE {
                    return None;
                }
                let mut cases = HashMap::new();
                for (&hash, list) in &collection.cases {
                    // One unconditional block a value: a case with `if` is left to Rhai.
                    let [index] = list.blocks.as_slice() else {
                        return None;
                    };
                    let case = collection.expressions.get(*index)?;
                    if !matches!(case.lhs, Expr::BoolConstant(true, _)) {
                        return None;
                    }
                    cases.insert(hash, self.expr(&case.rhs)?);
                }
                let default = match collection.def_case {
                    Some(index) => self.expr(&collection.expressions.get(index)?.rhs)?,
                    None => Node::Const(Dynamic::UNIT),
                };
                Some(Node::Switch(
                    Box::new(self.expr(value)?),
                    cases,
                    Box::new(default),
                ))
            }
            // `throw` is a return with the break flag: left to the interpreter.
            Stmt::Return(value, flags, _) if !flags.intersects(ASTFlags::BREAK) => {
                Some(Node::Return(Box::new(match value {
                    Some(expr) => self.expr(expr)?,
                    None => Node::Const(Dynamic::UNIT),
                })))
            }
            _ => None,
        }
    }

    fn exprs(&mut self, exprs: &[Expr]) -> Option<Vec<Node>> {
        exprs.iter().map(|e| self.expr(e)).collect()
    }

    fn expr(&mut self, expr: &Expr) -> Option<Node> {
        match expr {
            Expr::DynamicConstant(value, _) => Some(Node::Const((**value).clone())),
            Expr::BoolConstant(b, _) => Some(Node::Const(Dynamic::from_bool(*b))),
            Expr::IntegerConstant(i, _) => Some(Node::Const(Dynamic::from_int(*i))),
            Expr::FloatConstant(f, _) => Some(Node::Const(Dynamic::from_float(**f))),
            Expr::CharConstant(c, _) => Some(Node::Const(Dynamic::from_char(*c))),
            Expr::StringConstant(s, _) => Some(Node::Const(Dynamic::from(s.clone()))),
            Expr::Unit(_) => Some(Node::Const(Dynamic::UNIT)),
            Expr::InterpolatedString(parts, _) => Some(Node::Interpolated(self.exprs(parts)?)),
            Expr::Array(items, _) => Some(Node::Array(self.exprs(items)?)),
            Expr::Map(map, _) => {
                let (entries, template) = &**map;
                let template: BTreeMap<Identifier, Dynamic> = template.clone();
                let values = entries
                    .iter()
                    .map(|(_, value)| self.expr(value))
                    .collect::<Option<Vec<_>>>()?;
                // Each key's entry: the last one written with it, as Rhai's assignments leave it.
                let order = template
                    .keys()
                    .map(|key| {
                        entries
                            .iter()
                            .rposition(|(ident, _)| ident.name == key.as_str())
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Node::Map(template, values, order))
            }
            Expr::Variable(var, _, _) if var.2.is_empty() => Some(Node::Var(self.lookup(&var.1)?)),
            Expr::Stmt(block) => self.block(block.statements()),
            Expr::FnCall(call, _) => self.call(call),
            Expr::Dot(chain, _, _) => {
                let base = self.expr(&chain.lhs)?;
                self.chain(base, &chain.rhs)
            }
            Expr::Index(index, flags, _) if flags.intersects(ASTFlags::BREAK) => Some(Node::Index(
                Box::new(self.expr(&index.lhs)?),
                Box::new(self.expr(&index.rhs)?),
            )),
            Expr::And(operands, _) => Some(Node::And(self.exprs(operands)?)),
            Expr::Or(operands, _) => Some(Node::Or(self.exprs(operands)?)),
            Expr::Coalesce(operands, _) => Some(Node::Coalesce(self.exprs(operands)?)),
            _ => None,
        }
    }

    /// The rest of a property chain (`.a.b[i].f()`) applied to `base`.
    fn chain(&mut self, base: Node, rest: &Expr) -> Option<Node> {
        match rest {
            Expr::Dot(chain, _, _) => {
                let step = self.step(base, &chain.lhs)?;
                self.chain(step, &chain.rhs)
            }
            // `base.a[i]` ending the chain: the index is the plain expression on the right.
            Expr::Index(index, flags, _) if flags.intersects(ASTFlags::BREAK) => {
                let step = self.step(base, &index.lhs)?;
                Some(Node::Index(
                    Box::new(step),
                    Box::new(self.expr(&index.rhs)?),
                ))
            }
            _ => self.step(base, rest),
        }
    }

    /// One step of a chain: `.name` or `.method(args)`.
    fn step(&mut self, base: Node, step: &Expr) -> Option<Node> {
        match step {
            Expr::Property(property, _) => Some(Node::Property(Box::new(base), property.2.clone())),
            Expr::MethodCall(call, _) => {
                // A script function called as a method binds `this`: left to the interpreter.
                if self.script_function(&call.name, call.args.len()).is_some()
                    || self
                        .script_function(&call.name, call.args.len() + 1)
                        .is_some()
                {
                    return None;
                }
                let native = natives::resolve(&call.name, call.args.len() + 1)?;
                let mut args = vec![base];
                args.extend(self.exprs(&call.args)?);
                Some(Node::Native(native, args))
            }
            _ => None,
        }
    }

    fn script_function(&self, name: &str, arity: usize) -> Option<usize> {
        self.functions.get(&(name.to_string(), arity)).copied()
    }

    fn call(&mut self, call: &FnCallExpr) -> Option<Node> {
        if !call.namespace.is_empty() || call.capture_parent_scope {
            return None;
        }
        let args = self.exprs(&call.args)?;
        // Operators are never the script's; other names are the script's first, as in Rhai.
        if call.op_token.is_none() {
            if let Some(index) = self.script_function(&call.name, args.len()) {
                self.calls.push(index);
                return Some(Node::Script(index, args));
            }
        }
        let native = natives::resolve(&call.name, args.len())?;
        Some(Node::Native(native, args))
    }
}

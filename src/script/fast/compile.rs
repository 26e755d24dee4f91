//! From Rhai's syntax tree to [`Node`]s: variables become slots of the function's frame, calls
//! are resolved to a compiled function or a native helper, and anything else is refused (the
//! function is then left to the interpreter).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rhai::{
    ASTFlags, ASTNode, Dynamic, Expr, FnCallExpr, Identifier, ImmutableString, Position, Stmt, AST,
};

use super::super::context::EventContext;
use super::super::draws::WeightTable;
use super::super::state::{HashedKey, StateMap};
use super::natives::{self, Mutator, Native};

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
    /// `value.name`; for `variable.state.name` and `variable.settings.name`, the entry of the
    /// scenario's frozen state or settings it reads when the variable is `ctx`, once known
    /// ([`Compiled::fold_context`]).
    Property(Box<Node>, HashedKey, Option<Box<Folded>>),
    /// `value[index]`.
    Index(Box<Node>, Box<Node>),
    /// A native helper or operator, arguments in order (for a method, the object first).
    Native(Native, Vec<Node>),
    /// A native helper or operator one of whose arguments (up to three) is a property chain
    /// read from a variable or a constant ([`is_pure_chain`]), read in place: the arguments
    /// and that one's place.
    NativeOnChain(Native, Vec<Node>, usize),
    /// A compiled script function, by index.
    Script(usize, Vec<Node>),
    /// `a && b && ...`.
    And(Vec<Node>),
    /// `a || b || ...`.
    Or(Vec<Node>),
    /// `a ?? b ?? ...`.
    Coalesce(Vec<Node>),
    /// `name = value` on a variable: its slot.
    Assign(usize, Box<Node>),
    /// `name.key = value` on a variable holding a map: its slot.
    SetProperty(usize, ImmutableString, Box<Node>),
    /// `name[index] = value` on a variable: its slot, the index (a variable or a constant:
    /// reading it has no effect, so it is read after the value as in Rhai) and the value.
    SetIndex(usize, Box<Node>, Box<Node>),
    /// `name.method(args)` or `name.key.method(args)` with a method that changes the variable
    /// (`push`, `sort`): its slot, the key, the method and its arguments.
    Mutate(usize, Option<ImmutableString>, Mutator, Vec<Node>),
    /// `pick_weighted(#{ .. })` of a constant map: its table, read once.
    PickWeighted(Box<WeightTable>),
    /// A variable read for the last time, as the function's value: its slot, moved out of the
    /// frame (the frame ends with the call) instead of copied.
    Take(usize),
    /// A variable read for the last time where its value is kept (see [`moved_at_last_reads`]):
    /// its slot, moved out of the frame unless its value is read-only (a copy is read-write).
    Last(usize),
    /// A variable handed to a script function whose parameter the function only reads (see
    /// [`lent_arguments`]): its slot, its value moved into the callee's frame once every
    /// argument is read, and moved back when the call ends, instead of copied and dropped.
    Lent(usize),
    /// A compiled script function, by index, one or more of whose arguments are lent.
    Lending(usize, Vec<Node>),
    /// `items.map(closure)` or `items.filter(closure)`: the items, the closure's function and
    /// the values it captured (its first arguments, before the item).
    Each(Each, Box<Node>, usize, Vec<Node>),
    /// `for item, counter in items { body }`: the slots of the item and the counter.
    ForEach(usize, Option<usize>, Box<Node>, Box<Node>),
    /// `for i, counter in lo..hi { body }` (`..=`: `hi` included).
    ForRange(usize, Option<usize>, Box<(Node, Node)>, bool, Box<Node>),
    /// `while condition { body }`.
    While(Box<Node>, Box<Node>),
    /// `throw`: the interpreter throws it, with its position.
    Throw,
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `switch value { case => .., _ => default }` with constant cases and no conditions: each
    /// case under Rhai's hash of its value (see [`switch_hash`]).
    Switch(Box<Node>, Cases, Box<Node>),
}

/// A `switch`'s cases by hash, sorted: a search of a few hashes, where a `HashMap` hashed the
/// hash again with SipHash, about 700 instructions a darooghe event.
#[derive(Debug, Clone)]
pub struct Cases(Vec<(u64, Node)>);

impl Cases {
    /// The cases, each under the hash of its value.
    fn new(mut cases: Vec<(u64, Node)>) -> Self {
        cases.sort_unstable_by_key(|(hash, _)| *hash);
        Self(cases)
    }

    /// The case of the value whose hash is `hash`, if any.
    pub fn get(&self, hash: u64) -> Option<&Node> {
        let at = self.0.binary_search_by_key(&hash, |(h, _)| *h).ok()?;
        Some(&self.0[at].1)
    }

    /// Each case made anew by `f`.
    fn map(self, f: impl Fn(Node) -> Node) -> Self {
        Self(self.0.into_iter().map(|(h, case)| (h, f(case))).collect())
    }

    fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.0.iter_mut().map(|(_, case)| case)
    }
}

/// An entry of the frozen state or settings, read once for `ctx.state.name` or
/// `ctx.settings.name`: such a read walked `ctx`, then the state, then looked the name up, about
/// 590 instructions; a folded one checks that the variable holds the `ctx` whose state (or
/// settings) it was read from, and takes the entry.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The variable's slot: the entry is `ctx`'s only if the variable holds `ctx`.
    pub slot: usize,
    /// Whether it is an entry of the settings (or of the state).
    pub settings: bool,
    /// The state or settings it was read from: a `ctx` holding another (a reload, a worker's
    /// own copy) reads its own, the usual way.
    pub source: Arc<Dynamic>,
    /// The entry, or `()` when there is none (as a map gives for a missing property).
    pub value: Dynamic,
}

impl Folded {
    /// The entry, if the variable in `frame` holds the `ctx` it was read for.
    #[inline]
    pub fn entry(&self, frame: &[Dynamic]) -> Option<&Dynamic> {
        let ctx = frame[self.slot].read_lock::<EventContext>()?;
        let source = if self.settings {
            &ctx.settings
        } else {
            &ctx.state
        };
        Arc::ptr_eq(source, &self.source).then_some(&self.value)
    }
}

/// What [`Node::Each`] makes of its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Each {
    /// `map`: each item's value.
    Map,
    /// `filter`: the items for which the closure is true.
    Filter,
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

/// Which native functions a script's engine has, so which calls the fast path may make itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// A scenario's: Rhai's own functions and the simulator's helpers (`rand_int`, `pick`,
    /// `uuid`, `remember`, ...).
    Scenario,
    /// Rhai's own functions only, as a detection rule's engine has: a call to a helper is left
    /// to the interpreter, which reports it as the unknown function it is there.
    Rhai,
}

/// One compiled script function.
#[derive(Debug)]
pub struct Function {
    /// Its name.
    pub name: ImmutableString,
    /// Its parameters: the first slots of its frame.
    pub params: usize,
    /// Slots its frame needs.
    pub slots: usize,
    /// Its body; `None` when it could not be compiled (a call to it gives the event up).
    pub body: Option<Node>,
    /// Whether it is the main script's (not an imported module's).
    main: bool,
    /// The slots its body assigns to or changes: a closure that changes what it captured is
    /// left to the interpreter, where the capture is shared with the enclosing function.
    pub written: BTreeSet<usize>,
}

/// The compiled functions of a script and of the modules it imports.
#[derive(Debug)]
pub struct Compiled {
    /// Every script function, compiled or not, by index.
    pub functions: Vec<Function>,
}

/// The functions of one file (the script or a module) by name and arity.
type Names = HashMap<(String, usize), usize>;

impl Compiled {
    /// Compiles every function of the script `ast`, and of the `modules` it imports (each with
    /// the alias the script calls it by), that can be.
    pub fn from_ast(ast: &AST, modules: &[(String, AST)], vocabulary: Vocabulary) -> Self {
        let files: Vec<&AST> = std::iter::once(ast)
            .chain(modules.iter().map(|(_, m)| m))
            .collect();
        // Each file's functions, numbered across the files; private ones are not callable by
        // a module's name.
        let mut names: Vec<Names> = Vec::new();
        let mut public: Vec<Names> = Vec::new();
        let mut next = 0;
        for file in &files {
            let mut own = Names::new();
            let mut open = Names::new();
            for def in file.iter_fn_def() {
                let key = (def.name.to_string(), def.params.len());
                if !matches!(def.access, rhai::FnAccess::Private) {
                    open.insert(key.clone(), next);
                }
                own.insert(key, next);
                next += 1;
            }
            names.push(own);
            public.push(open);
        }
        let aliases: HashMap<&str, &Names> = modules
            .iter()
            .map(|(alias, _)| alias.as_str())
            .zip(public.iter().skip(1))
            .collect();
        let mut functions = Vec::with_capacity(next);
        for (f, file) in files.iter().enumerate() {
            let bodies = bodies(file);
            for (i, def) in file.iter_fn_def().enumerate() {
                let mut compiler = Compiler {
                    functions: &names[f],
                    // A module's functions do not see the script's modules.
                    modules: if f == 0 {
                        aliases.clone()
                    } else {
                        HashMap::new()
                    },
                    scopes: vec![def.params.iter().map(|p| p.to_string()).collect()],
                    slots: def.params.len(),
                    loops: 0,
                    written: BTreeSet::new(),
                    vocabulary,
                };
                let body = bodies
                    .get(&i)
                    .filter(|_| def.this_type.is_none())
                    .and_then(|statements| compiler.block(statements))
                    .map(moved_at_the_end)
                    .map(moved_at_last_reads);
                functions.push(Function {
                    name: def.name.clone(),
                    params: def.params.len(),
                    slots: compiler.slots,
                    body,
                    main: f == 0,
                    written: compiler.written,
                });
            }
        }
        lent_arguments(&mut functions);
        Self { functions }
    }

    /// Reads, for every `variable.state.name` and `variable.settings.name`, the entry of `state`
    /// or `settings` it gives when the variable is `ctx` ([`Folded`]): called once both are
    /// known, after `setup` and in each worker, whose copies they are.
    pub fn fold_context(&mut self, state: &Arc<Dynamic>, settings: &Arc<Dynamic>) {
        let fold = &mut |node: &mut Node| {
            let Node::Property(base, name, folded) = node else {
                return;
            };
            let Node::Property(variable, part, _) = &**base else {
                return;
            };
            let Node::Var(slot) = **variable else {
                return;
            };
            let source = match part.as_str() {
                "state" => state,
                "settings" => settings,
                _ => return,
            };
            // Only a frozen map: `ctx.state.name` on anything else is the interpreter's.
            *folded = source.read_lock::<StateMap>().map(|map| {
                Box::new(Folded {
                    slot,
                    settings: part.as_str() == "settings",
                    source: source.clone(),
                    value: map
                        .entries()
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Dynamic::UNIT),
                })
            });
        };
        for function in &mut self.functions {
            if let Some(body) = &mut function.body {
                visit_mut(body, fold);
            }
        }
    }

    /// The index of the script's own function `name` with `arity` parameters, if compiled.
    pub fn runnable(&self, name: &str, arity: usize) -> Option<usize> {
        self.functions
            .iter()
            .position(|f| f.main && f.name == name && f.params == arity && f.body.is_some())
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
            // The innermost body holding it: a closure's body lies inside its function's. A
            // closure written as one expression (`|c| c.km`) has no end: its one statement
            // starts where its body does.
            let holds = |start: Position, end: Position| {
                if end.is_none() {
                    at == start
                } else {
                    start <= at && at <= end
                }
            };
            let holder = ranges
                .iter()
                .enumerate()
                .filter(|(_, &(start, end))| !at.is_none() && holds(start, end))
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
    /// The functions of the file being compiled, by name and arity.
    functions: &'a Names,
    /// The public functions of each module the file may call, by alias.
    modules: HashMap<&'a str, &'a Names>,
    /// The names in scope, innermost last; a name's slot is its place in the frame.
    scopes: Vec<Vec<String>>,
    /// Slots used so far.
    slots: usize,
    /// Loops around the statement being compiled (`break` needs one).
    loops: usize,
    /// The slots assigned to or changed so far.
    written: BTreeSet<usize>,
    /// The natives the script's engine has.
    vocabulary: Vocabulary,
}

impl Compiler<'_> {
    /// The native `name` with `arity` arguments, if the fast path knows it and the script's
    /// engine has it.
    fn native(&self, name: &str, arity: usize) -> Option<Native> {
        natives::resolve(name, arity)
            .filter(|native| self.vocabulary == Vocabulary::Scenario || !native.is_helper())
    }

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
        let mut nodes = nodes?;
        // A block of one statement is that statement: the same value, one node fewer to
        // evaluate. Most blocks are an `if`'s branch or a short function's body (31 blocks
        // evaluated a darooghe event): 3.2% fewer instructions an event on darooghe, 1.9% on
        // the seed port (valgrind).
        if nodes.len() == 1 {
            return nodes.pop();
        }
        Some(Node::Block(nodes))
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
                let mut cases = Vec::new();
                for (&hash, list) in &collection.cases {
                    // One unconditional block a value: a case with `if` is left to Rhai.
                    let [index] = list.blocks.as_slice() else {
                        return None;
                    };
                    let case = collection.expressions.get(*index)?;
                    if !matches!(case.lhs, Expr::BoolConstant(true, _)) {
                        return None;
                    }
                    cases.push((hash, self.expr(&case.rhs)?));
                }
                let default = match collection.def_case {
                    Some(index) => self.expr(&collection.expressions.get(index)?.rhs)?,
                    None => Node::Const(Dynamic::UNIT),
                };
                Some(Node::Switch(
                    Box::new(self.expr(value)?),
                    Cases::new(cases),
                    Box::new(default),
                ))
            }
            Stmt::Assignment(assignment) => self.assignment(&assignment.0, &assignment.1),
            Stmt::For(header, _) => self.for_loop(&header.0, header.1.as_ref(), &header.2),
            // `while true` and `loop` may `break` with a value: not compiled.
            Stmt::While(flow, _)
                if !matches!(flow.expr, Expr::Unit(_) | Expr::BoolConstant(true, _)) =>
            {
                let condition = self.expr(&flow.expr)?;
                self.loops += 1;
                let body = self.block(flow.body.statements());
                self.loops -= 1;
                Some(Node::While(Box::new(condition), Box::new(body?)))
            }
            // `break value` belongs to `loop`, which is not compiled.
            Stmt::BreakLoop(None, flags, _) if self.loops > 0 => {
                Some(if flags.intersects(ASTFlags::BREAK) {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            // `throw` is a return with the break flag: the interpreter throws it.
            Stmt::Return(_, flags, _) if flags.intersects(ASTFlags::BREAK) => Some(Node::Throw),
            Stmt::Return(value, _, _) => Some(Node::Return(Box::new(match value {
                Some(expr) => self.expr(expr)?,
                None => Node::Const(Dynamic::UNIT),
            }))),
            _ => None,
        }
    }

    /// `target = value` or `target op= value`, on a variable or a property of one.
    fn assignment(&mut self, op: &rhai::OpAssignment, target: &rhai::BinaryExpr) -> Option<Node> {
        let value = self.expr(&target.rhs)?;
        // `x op= v` is `x = x op v`: the variable is read when the operator runs.
        let with_op = |current: Node, value: Node| -> Option<Node> {
            match op.get_op_assignment_info() {
                Some((.., syntax)) => Some(native_call(
                    natives::resolve(syntax, 2)?,
                    vec![current, value],
                )),
                None => Some(value),
            }
        };
        match &target.lhs {
            Expr::Variable(var, _, _) if var.2.is_empty() => {
                let slot = self.lookup(&var.1)?;
                self.written.insert(slot);
                Some(Node::Assign(
                    slot,
                    Box::new(with_op(Node::Var(slot), value)?),
                ))
            }
            Expr::Dot(chain, _, _) => {
                let (Expr::Variable(var, _, _), Expr::Property(property, _)) =
                    (&chain.lhs, &chain.rhs)
                else {
                    return None;
                };
                if !var.2.is_empty() {
                    return None;
                }
                let slot = self.lookup(&var.1)?;
                self.written.insert(slot);
                let name = property.2.clone();
                let current = Node::Property(
                    Box::new(Node::Var(slot)),
                    HashedKey::new(name.clone()),
                    None,
                );
                Some(Node::SetProperty(
                    slot,
                    name,
                    Box::new(with_op(current, value)?),
                ))
            }
            Expr::Index(chain, _, _) => {
                // `name[index]` ending the chain: not `name[i][j]` nor `name[i].key`.
                let (Expr::Variable(var, _, _), index) = (&chain.lhs, &chain.rhs) else {
                    return None;
                };
                if !var.2.is_empty() || matches!(index, Expr::Dot(..) | Expr::Index(..)) {
                    return None;
                }
                let index = self.expr(index)?;
                if !matches!(index, Node::Var(_) | Node::Const(_)) {
                    return None;
                }
                let slot = self.lookup(&var.1)?;
                self.written.insert(slot);
                let current = Node::Index(Box::new(Node::Var(slot)), Box::new(index.clone()));
                Some(Node::SetIndex(
                    slot,
                    Box::new(index),
                    Box::new(with_op(current, value)?),
                ))
            }
            _ => None,
        }
    }

    /// `for item in items { .. }` or `for (item, counter) in items { .. }`.
    fn for_loop(
        &mut self,
        item: &rhai::Ident,
        counter: Option<&rhai::Ident>,
        flow: &rhai::FlowControl,
    ) -> Option<Node> {
        let range = match &flow.expr {
            Expr::FnCall(call, _)
                if call.namespace.is_empty()
                    && call.args.len() == 2
                    && matches!(call.name.as_str(), ".." | "..=") =>
            {
                let bounds = (self.expr(&call.args[0])?, self.expr(&call.args[1])?);
                Some((bounds, call.name.as_str() == "..="))
            }
            _ => None,
        };
        let items = match range {
            None => Some(self.expr(&flow.expr)?),
            Some(_) => None,
        };
        // The item and the counter live in a scope of their own around the body.
        self.scopes.push(Vec::new());
        let declare = |compiler: &mut Self, name: &str| {
            let slot = compiler.slots;
            compiler.slots += 1;
            compiler.scopes.last_mut()?.push(name.to_string());
            Some(slot)
        };
        let item_slot = declare(self, &item.name);
        let counter_slot = match counter {
            Some(counter) => Some(declare(self, &counter.name)?),
            None => None,
        };
        self.loops += 1;
        let body = self.block(flow.body.statements());
        self.loops -= 1;
        let scope = self.scopes.pop().unwrap_or_default();
        if let Some(outer) = self.scopes.last_mut() {
            outer.extend(scope.into_iter().map(|_| String::new()));
        }
        let (item_slot, body) = (item_slot?, Box::new(body?));
        Some(match (range, items) {
            (Some((bounds, inclusive)), _) => {
                Node::ForRange(item_slot, counter_slot, Box::new(bounds), inclusive, body)
            }
            (None, Some(items)) => Node::ForEach(item_slot, counter_slot, Box::new(items), body),
            (None, None) => return None,
        })
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
                if let Some(mutate) = self.mutation(&chain.lhs, &chain.rhs) {
                    return mutate;
                }
                let base = self.expr(&chain.lhs)?;
                self.chain(base, &chain.rhs)
            }
            Expr::Index(index, flags, _) if flags.intersects(ASTFlags::BREAK) => Some(Node::Index(
                Box::new(self.expr(&index.lhs)?),
                Box::new(self.expr(&index.rhs)?),
            )),
            // `items[i].rest`: the chain after the index starts with the index itself.
            Expr::Index(index, _, _) => {
                let base = self.expr(&index.lhs)?;
                self.after_index(base, &index.rhs)
            }
            Expr::And(operands, _) => Some(Node::And(self.exprs(operands)?)),
            Expr::Or(operands, _) => Some(Node::Or(self.exprs(operands)?)),
            Expr::Coalesce(operands, _) => Some(Node::Coalesce(self.exprs(operands)?)),
            _ => None,
        }
    }

    /// `variable.method(..)` or `variable.key.method(..)` with a method that changes what it is
    /// called on: `None` for any other chain, `Some(None)` for one that cannot be compiled.
    fn mutation(&mut self, base: &Expr, rest: &Expr) -> Option<Option<Node>> {
        let Expr::Variable(var, _, _) = base else {
            return None;
        };
        let (key, call) = match rest {
            Expr::MethodCall(call, _) => (None, call),
            Expr::Dot(chain, _, _) => match (&chain.lhs, &chain.rhs) {
                (Expr::Property(property, _), Expr::MethodCall(call, _)) => {
                    (Some(property.2.clone()), call)
                }
                _ => return None,
            },
            _ => return None,
        };
        let mutator = Mutator::resolve(&call.name, call.args.len())?;
        // The script's own function of that name is called with `this` bound: the interpreter's.
        if !var.2.is_empty()
            || self
                .script_function(&call.name, call.args.len() + 1)
                .is_some()
            || self.script_function(&call.name, call.args.len()).is_some()
        {
            return Some(None);
        }
        let compiled = || -> Option<Node> {
            let slot = self.lookup(&var.1)?;
            self.written.insert(slot);
            let args = self.exprs(&call.args)?;
            Some(Node::Mutate(slot, key, mutator, args))
        };
        Some(compiled())
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
            // `base.a[i].rest`.
            Expr::Index(index, _, _) => {
                let step = self.step(base, &index.lhs)?;
                self.after_index(step, &index.rhs)
            }
            _ => self.step(base, rest),
        }
    }

    /// `base[i]` and the chain after it, as Rhai nests them: `rest` is the index followed by
    /// the rest of the chain (`.name..`, or another index).
    fn after_index(&mut self, base: Node, rest: &Expr) -> Option<Node> {
        let indexed = |compiler: &mut Self, at: &Expr| -> Option<Node> {
            Some(Node::Index(Box::new(base), Box::new(compiler.expr(at)?)))
        };
        match rest {
            Expr::Dot(chain, _, _) => {
                let step = indexed(self, &chain.lhs)?;
                self.chain(step, &chain.rhs)
            }
            Expr::Index(index, flags, _) => {
                let step = indexed(self, &index.lhs)?;
                if flags.intersects(ASTFlags::BREAK) {
                    Some(Node::Index(
                        Box::new(step),
                        Box::new(self.expr(&index.rhs)?),
                    ))
                } else {
                    self.after_index(step, &index.rhs)
                }
            }
            _ => None,
        }
    }

    /// One step of a chain: `.name` or `.method(args)`.
    fn step(&mut self, base: Node, step: &Expr) -> Option<Node> {
        match step {
            Expr::Property(property, _) => Some(Node::Property(
                Box::new(base),
                HashedKey::new(property.2.clone()),
                None,
            )),
            Expr::MethodCall(call, _) => {
                // A script function called as a method binds `this`: left to the interpreter.
                if self.script_function(&call.name, call.args.len()).is_some()
                    || self
                        .script_function(&call.name, call.args.len() + 1)
                        .is_some()
                {
                    return None;
                }
                let each = match call.name.as_str() {
                    "map" => Some(Each::Map),
                    "filter" => Some(Each::Filter),
                    _ => None,
                };
                if let (Some(each), [closure]) = (each, call.args.as_slice()) {
                    let (function, captured) = self.closure(closure)?;
                    return Some(Node::Each(each, Box::new(base), function, captured));
                }
                let native = self.native(&call.name, call.args.len() + 1)?;
                let mut args = vec![base];
                args.extend(self.exprs(&call.args)?);
                Some(native_call(native, args))
            }
            _ => None,
        }
    }

    /// A closure: `|x| ..` (a function pointer to an anonymous function) or, when it captures
    /// variables, the block Rhai makes of it (`Share` the variables, then `curry` the pointer
    /// with them). Its function (taking the captured values, then the item) and the captured
    /// values.
    fn closure(&mut self, expr: &Expr) -> Option<(usize, Vec<Node>)> {
        let pointer = |expr: &Expr| -> Option<ImmutableString> {
            let Expr::DynamicConstant(value, _) = expr else {
                return None;
            };
            let pointer = value.read_lock::<rhai::FnPtr>()?;
            (pointer.curry().is_empty() && !pointer.is_curried()).then(|| pointer.fn_name().into())
        };
        if let Some(name) = pointer(expr) {
            return Some((self.script_function(&name, 1)?, Vec::new()));
        }
        let Expr::Stmt(block) = expr else {
            return None;
        };
        let curry = match block.statements() {
            [Stmt::Share(_), Stmt::FnCall(curry, _)] => curry,
            [Stmt::Share(_), Stmt::Expr(call)] => match &**call {
                Expr::FnCall(curry, _) => curry,
                _ => return None,
            },
            _ => return None,
        };
        if curry.name != "curry" || !curry.namespace.is_empty() {
            return None;
        }
        let (first, variables) = curry.args.split_first()?;
        let name = pointer(first)?;
        if !variables.iter().all(|v| matches!(v, Expr::Variable(..))) {
            return None;
        }
        let captured = self.exprs(variables)?;
        Some((self.script_function(&name, variables.len() + 1)?, captured))
    }

    fn script_function(&self, name: &str, arity: usize) -> Option<usize> {
        self.functions.get(&(name.to_string(), arity)).copied()
    }

    fn call(&mut self, call: &FnCallExpr) -> Option<Node> {
        if call.capture_parent_scope {
            return None;
        }
        let mut args = self.exprs(&call.args)?;
        // Rhai reads a variable given first after the other arguments (it passes it by
        // reference): where another argument changes it, the interpreter's order is left to it.
        if call.op_token.is_none() {
            if let Some((&mut Node::Var(slot), rest)) = args.split_first_mut() {
                if !rest.iter_mut().all(|arg| only_reads(arg, slot)) {
                    return None;
                }
            }
        }
        if !call.namespace.is_empty() {
            // `alias::name(..)`: a public function of an imported module.
            let namespace = &call.namespace;
            if namespace.to_string() != namespace.root() {
                return None;
            }
            let module = self.modules.get(namespace.root())?;
            let index = *module.get(&(call.name.to_string(), args.len()))?;
            return Some(Node::Script(index, args));
        }
        // Operators are never the script's; other names are the file's own first, as in Rhai.
        if call.op_token.is_none() {
            if let Some(index) = self.script_function(&call.name, args.len()) {
                return Some(Node::Script(index, args));
            }
        }
        let native = self.native(&call.name, args.len())?;
        if let (Native::PickWeighted, [weights]) = (native, args.as_slice()) {
            if let Some(table) = constant_map(weights).and_then(|m| WeightTable::of(&m).ok()) {
                return Some(Node::PickWeighted(Box::new(table)));
            }
        }
        Some(native_call(native, args))
    }
}

/// A function's body with the variables it gives back moved rather than copied: those that are
/// its value (the last statement, through `if` and `switch`) and those `return` gives. The
/// frame ends with the call, so a map built in a variable and returned (an event) is not copied
/// once more on its way out.
fn moved_at_the_end(body: Node) -> Node {
    match body {
        Node::Var(slot) => Node::Take(slot),
        Node::Block(mut statements) => {
            if let Some(last) = statements.pop() {
                statements.push(moved_at_the_end(last));
            }
            Node::Block(statements.into_iter().map(moved_in_returns).collect())
        }
        Node::If(condition, then, otherwise) => Node::If(
            condition,
            Box::new(moved_at_the_end(*then)),
            Box::new(moved_at_the_end(*otherwise)),
        ),
        Node::Switch(value, cases, default) => Node::Switch(
            value,
            cases.map(moved_at_the_end),
            Box::new(moved_at_the_end(*default)),
        ),
        other => moved_in_returns(other),
    }
}

/// `return variable` anywhere in a statement's blocks, `if`s and loops becomes a move.
fn moved_in_returns(node: Node) -> Node {
    match node {
        Node::Return(value) => match *value {
            Node::Var(slot) => Node::Return(Box::new(Node::Take(slot))),
            other => Node::Return(Box::new(other)),
        },
        Node::Block(statements) => {
            Node::Block(statements.into_iter().map(moved_in_returns).collect())
        }
        Node::If(condition, then, otherwise) => Node::If(
            condition,
            Box::new(moved_in_returns(*then)),
            Box::new(moved_in_returns(*otherwise)),
        ),
        Node::ForEach(item, counter, items, body) => {
            Node::ForEach(item, counter, items, Box::new(moved_in_returns(*body)))
        }
        Node::ForRange(item, counter, bounds, inclusive, body) => Node::ForRange(
            item,
            counter,
            bounds,
            inclusive,
            Box::new(moved_in_returns(*body)),
        ),
        Node::While(condition, body) => Node::While(condition, Box::new(moved_in_returns(*body))),
        other => other,
    }
}

/// A function's body with each variable read for the last time where the value read is kept (a
/// script function's argument, a map literal's value, an array's item, the value a `let` or an
/// assignment stores) moved out of its slot rather than copied ([`Node::Last`]): a map built in
/// a variable and put in an event is not copied once more, a state record passed on is not
/// copied with its two allocations. Only the body's own statements are looked at: a variable
/// read once in a statement, outside any loop, and used by no statement after it is read there
/// for the last time, whatever the path through the statement.
fn moved_at_last_reads(body: Node) -> Node {
    let Node::Block(mut statements) = body else {
        return body;
    };
    // The slots the statements after this one use, gathered from the end.
    let mut used_later = BTreeSet::new();
    for statement in statements.iter_mut().rev() {
        let uses = Uses::of(statement);
        let last: BTreeSet<usize> = uses
            .once
            .iter()
            .copied()
            .filter(|slot| !used_later.contains(slot))
            .collect();
        if !last.is_empty() {
            visit_mut(statement, &mut |node| moved_reads(node, &last));
        }
        used_later.extend(uses.once);
        used_later.extend(uses.more);
    }
    Node::Block(statements)
}

/// Where a statement uses its variables: each read once outside loops, and the others (read
/// more than once, in a loop, or changed in place).
#[derive(Default)]
struct Uses {
    once: BTreeSet<usize>,
    more: BTreeSet<usize>,
}

impl Uses {
    /// A use of `slot` that a move may take if it is the only one.
    fn read(&mut self, slot: usize, in_loop: bool) {
        if in_loop || self.more.contains(&slot) || !self.once.insert(slot) {
            self.once.remove(&slot);
            self.more.insert(slot);
        }
    }

    /// A use of `slot` that a move must not take: a change in place, a loop's variable, a move.
    fn held(&mut self, slot: usize) {
        self.once.remove(&slot);
        self.more.insert(slot);
    }

    /// The uses in `statement`.
    fn of(statement: &mut Node) -> Self {
        let mut uses = Self::default();
        visit_in_loops(statement, false, &mut |node, in_loop| match *node {
            Node::Var(slot) => uses.read(slot, in_loop),
            Node::Take(slot)
            | Node::Last(slot)
            | Node::SetProperty(slot, ..)
            | Node::SetIndex(slot, ..)
            | Node::Mutate(slot, ..) => uses.held(slot),
            Node::ForEach(item, counter, ..) | Node::ForRange(item, counter, ..) => {
                uses.held(item);
                counter.into_iter().for_each(|c| uses.held(c));
            }
            _ => {}
        });
        uses
    }
}

/// `node`'s kept values that read a variable of `last` made moves ([`moved_at_last_reads`]).
fn moved_reads(node: &mut Node, last: &BTreeSet<usize>) {
    let moved = |value: &mut Node| {
        if let Node::Var(slot) = *value {
            if last.contains(&slot) {
                *value = Node::Last(slot);
            }
        }
    };
    match node {
        Node::Script(_, values) | Node::Array(values) | Node::Map(_, values, _) => {
            values.iter_mut().for_each(moved);
        }
        Node::Let(_, value)
        | Node::Assign(_, value)
        | Node::SetProperty(_, _, value)
        | Node::SetIndex(_, _, value) => moved(value),
        _ => {}
    }
}

/// Script functions' arguments that are variables, lent rather than copied ([`Node::Lent`])
/// where the callee only reads the parameter: `transaction(ctx, customer, merchant, ..)` copied
/// `ctx` and two state records (an allocation and atomic counts each) and dropped them after.
///
/// A parameter only read is one the body never changes ([`Function::written`]) and never moves
/// out ([`Node::Take`], [`Node::Last`]), except into a call that only reads it in turn: a
/// fixed point over the calls, from none. A variable is lent where no other argument of the
/// call changes or moves it (they are read before the move) and once a call.
fn lent_arguments(functions: &mut [Function]) {
    let mut reads_only: Vec<Vec<bool>> = functions.iter().map(|f| vec![false; f.params]).collect();
    loop {
        let mut grew = false;
        for f in 0..functions.len() {
            for param in 0..functions[f].params {
                if reads_only[f][param] || functions[f].written.contains(&param) {
                    continue;
                }
                let Some(body) = functions[f].body.as_mut() else {
                    continue;
                };
                if !moves_out(body, param, &reads_only) {
                    reads_only[f][param] = true;
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    for function in functions.iter_mut() {
        if let Some(body) = function.body.as_mut() {
            visit_mut(body, &mut |node| lend(node, &reads_only));
        }
    }
}

/// Whether `body` moves `slot`'s value out of its frame, other than into a parameter that
/// `reads_only` says its function only reads.
fn moves_out(body: &mut Node, slot: usize, reads_only: &[Vec<bool>]) -> bool {
    let (mut moves, mut into_readers) = (0, 0);
    visit_mut(body, &mut |node| match node {
        Node::Take(s) | Node::Last(s) if *s == slot => moves += 1,
        Node::Script(callee, args) => {
            into_readers += args
                .iter()
                .enumerate()
                .filter(|(i, arg)| {
                    matches!(arg, Node::Last(s) if *s == slot) && reads_only[*callee][*i]
                })
                .count();
        }
        _ => {}
    });
    moves > into_readers
}

/// A script call's arguments lent where [`lent_arguments`] allows.
fn lend(node: &mut Node, reads_only: &[Vec<bool>]) {
    let Node::Script(callee, args) = node else {
        return;
    };
    for i in 0..args.len() {
        let (Node::Var(slot) | Node::Last(slot)) = args[i] else {
            continue;
        };
        if !reads_only[*callee][i] {
            continue;
        }
        let others_keep_it = args
            .iter_mut()
            .enumerate()
            .all(|(j, other)| j == i || only_reads(other, slot));
        if others_keep_it {
            args[i] = Node::Lent(slot);
        }
    }
    if args.iter().any(|arg| matches!(arg, Node::Lent(_))) {
        *node = Node::Lending(*callee, std::mem::take(args));
    }
}

/// Whether `node` leaves `slot` as it is: reads it at most, neither changing nor moving nor
/// lending it.
fn only_reads(node: &mut Node, slot: usize) -> bool {
    let mut untouched = true;
    visit_mut(node, &mut |node| match *node {
        Node::Assign(s, _)
        | Node::SetProperty(s, ..)
        | Node::SetIndex(s, ..)
        | Node::Mutate(s, ..)
        | Node::Take(s)
        | Node::Last(s)
        | Node::Lent(s)
            if s == slot =>
        {
            untouched = false;
        }
        _ => {}
    });
    untouched
}

/// The map a node always gives: a constant, or a literal of constants.
fn constant_map(node: &Node) -> Option<rhai::Map> {
    match node {
        Node::Const(value) => value.read_lock::<rhai::Map>().map(|map| map.clone()),
        Node::Map(template, values, order) => {
            let mut map = template.clone();
            for (slot, &entry) in map.values_mut().zip(order) {
                let Node::Const(value) = &values[entry] else {
                    return None;
                };
                *slot = value.clone();
            }
            Some(map)
        }
        _ => None,
    }
}

/// Calls `f` on `node` and on every node inside it.
fn visit_mut(node: &mut Node, f: &mut dyn FnMut(&mut Node)) {
    visit_in_loops(node, false, &mut |node, _| f(node));
}

/// Calls `f` on `node` and on every node inside it, with whether the node is in a loop (all of
/// a loop is: its items, bounds and condition are read again after each turn but the last).
fn visit_in_loops(node: &mut Node, in_loop: bool, f: &mut dyn FnMut(&mut Node, bool)) {
    f(node, in_loop);
    let in_loop = in_loop
        || matches!(
            node,
            Node::ForEach(..) | Node::ForRange(..) | Node::While(..)
        );
    let visit = |node: &mut Node, f: &mut dyn FnMut(&mut Node, bool)| {
        visit_in_loops(node, in_loop, f);
    };
    let all = |nodes: &mut [Node], f: &mut dyn FnMut(&mut Node, bool)| {
        nodes.iter_mut().for_each(|n| visit_in_loops(n, in_loop, f));
    };
    match node {
        Node::Const(_)
        | Node::Var(_)
        | Node::Take(_)
        | Node::Last(_)
        | Node::Lent(_)
        | Node::PickWeighted(_)
        | Node::Throw
        | Node::Break
        | Node::Continue => {}
        Node::Let(_, value)
        | Node::Assign(_, value)
        | Node::Return(value)
        | Node::Property(value, ..)
        | Node::SetProperty(_, _, value) => visit(value, f),
        Node::Block(nodes)
        | Node::Array(nodes)
        | Node::Map(_, nodes, _)
        | Node::Interpolated(nodes)
        | Node::Native(_, nodes)
        | Node::NativeOnChain(_, nodes, _)
        | Node::Script(_, nodes)
        | Node::Lending(_, nodes)
        | Node::And(nodes)
        | Node::Or(nodes)
        | Node::Coalesce(nodes)
        | Node::Mutate(_, _, _, nodes) => all(nodes, f),
        Node::If(condition, then, otherwise) => {
            visit(condition, f);
            visit(then, f);
            visit(otherwise, f);
        }
        Node::Index(base, index) | Node::SetIndex(_, base, index) | Node::While(base, index) => {
            visit(base, f);
            visit(index, f);
        }
        Node::Each(_, items, _, captured) => {
            visit(items, f);
            all(captured, f);
        }
        Node::ForEach(_, _, items, body) => {
            visit(items, f);
            visit(body, f);
        }
        Node::ForRange(_, _, bounds, _, body) => {
            visit(&mut bounds.0, f);
            visit(&mut bounds.1, f);
            visit(body, f);
        }
        Node::Switch(value, cases, default) => {
            visit(value, f);
            cases.nodes_mut().for_each(|case| visit(case, f));
            visit(default, f);
        }
    }
}

/// The node calling `native` with `args`: one that reads a property chain argument in place
/// where there is one. A property beside a constant (`m.kind == "pos"`) is read in place by
/// [`Node::Native`] itself, from any base.
fn native_call(native: Native, args: Vec<Node>) -> Node {
    let beside_constant = matches!(
        args.as_slice(),
        [Node::Property(..), Node::Const(_)] | [Node::Const(_), Node::Property(..)]
    );
    match args.iter().position(is_pure_chain) {
        Some(chain) if !beside_constant && args.len() <= 3 => {
            Node::NativeOnChain(native, args, chain)
        }
        _ => Node::Native(native, args),
    }
}

/// Whether `node` is a property chain read from a variable or a constant (`ctx.state.plans`,
/// `customer.home.lat`): reading it has no effect, so it can be read in place, at any point
/// among a call's arguments.
pub(super) fn is_pure_chain(node: &Node) -> bool {
    match node {
        Node::Property(inner, ..) => match &**inner {
            Node::Var(_) | Node::Const(_) => true,
            deeper => is_pure_chain(deeper),
        },
        _ => false,
    }
}

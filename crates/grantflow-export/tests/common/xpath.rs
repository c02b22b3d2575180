//! An XPath 1.0 evaluator over roxmltree, for the expressions IATI's rulesets use: location
//! paths (absolute, relative, `//`, `..`, `.`, `@attr`, `@xml:lang`, `text()`, `node()`,
//! `*`, the `child`, `attribute`, `parent`, `self`, `descendant` and `descendant-or-self`
//! axes), predicates (boolean and positional), unions, `or`, `and`, `=`, `!=`, `<`, `<=`,
//! `>`, `>=`, `+`, `-`, literals, numbers, and the functions `count`, `not`, `number`,
//! `string`, `boolean`, `sum`, `true`, `false`, `contains`, `starts-with`,
//! `string-length` and `normalize-space`. Comparisons follow XPath 1.0 (a node-set compares
//! by its nodes' string values, "exists a node such that"). Anything else is refused with a
//! panic, so that a rule the evaluator does not understand fails the test rather than
//! passing unchecked.
#![allow(dead_code)]

use std::cmp::Ordering;

use roxmltree::{Document, Node};

/// The XML namespace, bound to the `xml` prefix in every XPath expression.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// A node of a node-set: an element, text or root node, or an attribute (its element and
/// its index among the element's attributes).
#[derive(Debug, Clone, Copy)]
pub enum Item<'a, 'input> {
    Node(Node<'a, 'input>),
    Attribute(Node<'a, 'input>, usize),
}

impl<'a, 'input> Item<'a, 'input> {
    /// The XPath string value: an attribute's value, a text node's text, an element's (or
    /// the root's) descendant text.
    pub fn string_value(&self) -> String {
        match self {
            Item::Attribute(node, index) => node
                .attributes()
                .nth(*index)
                .map(|a| a.value().to_string())
                .unwrap_or_default(),
            Item::Node(node) if node.is_text() => node.text().unwrap_or_default().to_string(),
            Item::Node(node) => node
                .descendants()
                .filter(|n| n.is_text())
                .filter_map(|n| n.text())
                .collect(),
        }
    }

    /// The element itself, or the element holding the attribute.
    pub fn node(&self) -> Node<'a, 'input> {
        match self {
            Item::Node(node) | Item::Attribute(node, _) => *node,
        }
    }

    /// The local name of the element or attribute ("" for text and root nodes).
    pub fn name(&self) -> String {
        match self {
            Item::Attribute(node, index) => node
                .attributes()
                .nth(*index)
                .map(|a| a.name().to_string())
                .unwrap_or_default(),
            Item::Node(node) => node.tag_name().name().to_string(),
        }
    }

    fn order_key(&self) -> (usize, usize) {
        match self {
            Item::Node(node) => (node.id().get_usize(), 0),
            Item::Attribute(node, index) => (node.id().get_usize(), index + 1),
        }
    }
}

/// The value of an expression.
#[derive(Debug, Clone)]
pub enum Value<'a, 'input> {
    Nodes(Vec<Item<'a, 'input>>),
    Boolean(bool),
    Number(f64),
    String(String),
}

impl<'a, 'input> Value<'a, 'input> {
    /// XPath `boolean()`.
    pub fn boolean(&self) -> bool {
        match self {
            Value::Nodes(nodes) => !nodes.is_empty(),
            Value::Boolean(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
        }
    }

    /// XPath `number()`.
    pub fn number(&self) -> f64 {
        match self {
            Value::Nodes(nodes) => nodes
                .first()
                .map_or(f64::NAN, |item| string_to_number(&item.string_value())),
            Value::Boolean(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => string_to_number(s),
        }
    }

    /// XPath `string()`.
    pub fn string(&self) -> String {
        match self {
            Value::Nodes(nodes) => nodes.first().map(Item::string_value).unwrap_or_default(),
            Value::Boolean(b) => b.to_string(),
            Value::Number(n) => number_to_string(*n),
            Value::String(s) => s.clone(),
        }
    }

    /// The node-set; panics for any other value (a rule's `paths` must select nodes).
    pub fn nodes(self, expression: &str) -> Vec<Item<'a, 'input>> {
        match self {
            Value::Nodes(nodes) => nodes,
            other => panic!("`{expression}` is not a node-set but {other:?}"),
        }
    }
}

/// XPath 1.0 `number()` of a string: optional whitespace, an optional `-`, digits with an
/// optional `.` (no exponent, no `+`); NaN otherwise.
pub fn string_to_number(text: &str) -> f64 {
    let trimmed = text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
    let well_formed = !digits.is_empty()
        && digits != "."
        && digits.chars().filter(|c| *c == '.').count() <= 1
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
    if well_formed {
        trimmed.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Slash,
    DoubleSlash,
    OpenBracket,
    CloseBracket,
    OpenParen,
    CloseParen,
    At,
    Pipe,
    Comma,
    Dot,
    DoubleDot,
    DoubleColon,
    Star,
    Plus,
    Minus,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Name(String),
    Literal(String),
    Number(f64),
}

fn tokenize(expression: &str) -> Vec<Token> {
    let chars: Vec<char> = expression.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let name_start = |c: char| c.is_alphabetic() || c == '_';
    let name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let (token, width) = match c {
            ' ' | '\t' | '\n' | '\r' => {
                at += 1;
                continue;
            }
            '/' if next == Some('/') => (Token::DoubleSlash, 2),
            '/' => (Token::Slash, 1),
            '[' => (Token::OpenBracket, 1),
            ']' => (Token::CloseBracket, 1),
            '(' => (Token::OpenParen, 1),
            ')' => (Token::CloseParen, 1),
            '@' => (Token::At, 1),
            '|' => (Token::Pipe, 1),
            ',' => (Token::Comma, 1),
            '*' => (Token::Star, 1),
            '+' => (Token::Plus, 1),
            '-' => (Token::Minus, 1),
            '=' => (Token::Equal, 1),
            '!' if next == Some('=') => (Token::NotEqual, 2),
            '<' if next == Some('=') => (Token::LessEqual, 2),
            '<' => (Token::Less, 1),
            '>' if next == Some('=') => (Token::GreaterEqual, 2),
            '>' => (Token::Greater, 1),
            ':' if next == Some(':') => (Token::DoubleColon, 2),
            '.' if next == Some('.') => (Token::DoubleDot, 2),
            '.' if !next.is_some_and(|n| n.is_ascii_digit()) => (Token::Dot, 1),
            '\'' | '"' => {
                let end = chars[at + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .unwrap_or_else(|| panic!("unterminated literal in `{expression}`"));
                let text: String = chars[at + 1..at + 1 + end].iter().collect();
                (Token::Literal(text), end + 2)
            }
            d if d.is_ascii_digit() || d == '.' => {
                let end = chars[at..]
                    .iter()
                    .position(|&d| !(d.is_ascii_digit() || d == '.'))
                    .map_or(chars.len() - at, |p| p);
                let text: String = chars[at..at + end].iter().collect();
                let number = text
                    .parse()
                    .unwrap_or_else(|_| panic!("bad number `{text}` in `{expression}`"));
                (Token::Number(number), end)
            }
            n if name_start(n) => {
                let mut end = at + 1;
                while end < chars.len() && name_char(chars[end]) {
                    end += 1;
                }
                // A QName: prefix:local (but not the axis separator `::`).
                if chars.get(end) == Some(&':')
                    && chars.get(end + 1).is_some_and(|c| name_start(*c))
                {
                    end += 2;
                    while end < chars.len() && name_char(chars[end]) {
                        end += 1;
                    }
                }
                let text: String = chars[at..end].iter().collect();
                (Token::Name(text), end - at)
            }
            other => panic!("unexpected `{other}` in XPath `{expression}`"),
        };
        tokens.push(token);
        at += width;
    }
    tokens
}

// ---------------------------------------------------------------------------------------
// Syntax

#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Child,
    Attribute,
    Parent,
    SelfNode,
    Descendant,
    DescendantOrSelf,
}

#[derive(Debug, Clone, PartialEq)]
enum NodeTest {
    /// A name, with its namespace URI when prefixed (only `xml:` is known).
    Name(Option<&'static str>, String),
    Any,
    Text,
    Node,
}

#[derive(Debug, Clone)]
struct Step {
    axis: Axis,
    test: NodeTest,
    predicates: Vec<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Compare(Compare, Box<Expr>, Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Subtract(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Union(Box<Expr>, Box<Expr>),
    /// A location path: from the root when absolute, else from the context node.
    Path {
        absolute: bool,
        steps: Vec<Step>,
    },
    /// A primary expression (literal, number, call, parenthesised) with predicates and a
    /// relative path after it.
    Filter {
        primary: Box<Expr>,
        predicates: Vec<Expr>,
        steps: Vec<Step>,
    },
    Literal(String),
    Number(f64),
    Call(String, Vec<Expr>),
}

struct Parser<'e> {
    tokens: Vec<Token>,
    at: usize,
    expression: &'e str,
}

/// A parsed XPath expression.
#[derive(Debug, Clone)]
pub struct XPath {
    expr: Expr,
    source: String,
}

impl XPath {
    /// Parses `expression`; panics on anything outside the supported subset.
    pub fn parse(expression: &str) -> XPath {
        let mut parser = Parser {
            tokens: tokenize(expression),
            at: 0,
            expression,
        };
        let expr = parser.or();
        assert!(
            parser.at == parser.tokens.len(),
            "unexpected {:?} in XPath `{expression}`",
            parser.tokens.get(parser.at)
        );
        XPath {
            expr,
            source: expression.to_string(),
        }
    }

    /// Evaluates with `context` as the context node (position 1 of 1).
    pub fn evaluate<'a, 'input>(&self, context: Item<'a, 'input>) -> Value<'a, 'input> {
        evaluate(&self.expr, context, 1, 1)
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Evaluates `expression` at `context`.
pub fn eval<'a, 'input>(expression: &str, context: Node<'a, 'input>) -> Value<'a, 'input> {
    XPath::parse(expression).evaluate(Item::Node(context))
}

/// The nodes `expression` selects from the document's root.
pub fn select<'a, 'input>(
    expression: &str,
    document: &'a Document<'input>,
) -> Vec<Item<'a, 'input>> {
    eval(expression, document.root()).nodes(expression)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.at + offset)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, token: Token) {
        let found = self.next();
        assert!(
            found.as_ref() == Some(&token),
            "expected {token:?}, found {found:?} in XPath `{}`",
            self.expression
        );
    }

    fn is_name(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n == name)
    }

    fn or(&mut self) -> Expr {
        let mut left = self.and();
        while self.is_name("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()));
        }
        left
    }

    fn and(&mut self) -> Expr {
        let mut left = self.equality();
        while self.is_name("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.equality()));
        }
        left
    }

    fn equality(&mut self) -> Expr {
        let mut left = self.relational();
        loop {
            let op = match self.peek() {
                Some(Token::Equal) => Compare::Equal,
                Some(Token::NotEqual) => Compare::NotEqual,
                _ => return left,
            };
            self.at += 1;
            left = Expr::Compare(op, Box::new(left), Box::new(self.relational()));
        }
    }

    fn relational(&mut self) -> Expr {
        let mut left = self.additive();
        loop {
            let op = match self.peek() {
                Some(Token::Less) => Compare::Less,
                Some(Token::LessEqual) => Compare::LessEqual,
                Some(Token::Greater) => Compare::Greater,
                Some(Token::GreaterEqual) => Compare::GreaterEqual,
                _ => return left,
            };
            self.at += 1;
            left = Expr::Compare(op, Box::new(left), Box::new(self.additive()));
        }
    }

    fn additive(&mut self) -> Expr {
        let mut left = self.unary();
        loop {
            match self.peek() {
                Some(Token::Plus) => {
                    self.at += 1;
                    left = Expr::Add(Box::new(left), Box::new(self.unary()));
                }
                Some(Token::Minus) => {
                    self.at += 1;
                    left = Expr::Subtract(Box::new(left), Box::new(self.unary()));
                }
                _ => return left,
            }
        }
    }

    fn unary(&mut self) -> Expr {
        if self.peek() == Some(&Token::Minus) {
            self.at += 1;
            return Expr::Negate(Box::new(self.unary()));
        }
        self.union()
    }

    fn union(&mut self) -> Expr {
        let mut left = self.path();
        while self.peek() == Some(&Token::Pipe) {
            self.at += 1;
            left = Expr::Union(Box::new(left), Box::new(self.path()));
        }
        left
    }

    fn path(&mut self) -> Expr {
        match self.peek() {
            Some(Token::Slash) => {
                self.at += 1;
                // `/` alone is the root.
                let steps = if self.starts_step() {
                    self.relative_steps()
                } else {
                    Vec::new()
                };
                Expr::Path {
                    absolute: true,
                    steps,
                }
            }
            Some(Token::DoubleSlash) => {
                self.at += 1;
                let mut steps = vec![descendant_or_self()];
                steps.extend(self.relative_steps());
                Expr::Path {
                    absolute: true,
                    steps,
                }
            }
            Some(Token::Literal(_) | Token::Number(_) | Token::OpenParen) => self.filter(),
            Some(Token::Name(name))
                if self.peek_at(1) == Some(&Token::OpenParen)
                    && !matches!(name.as_str(), "text" | "node") =>
            {
                self.filter()
            }
            _ => Expr::Path {
                absolute: false,
                steps: self.relative_steps(),
            },
        }
    }

    fn starts_step(&self) -> bool {
        matches!(
            self.peek(),
            Some(Token::Name(_) | Token::At | Token::Dot | Token::DoubleDot | Token::Star)
        )
    }

    fn filter(&mut self) -> Expr {
        let primary = match self.next() {
            Some(Token::Literal(text)) => Expr::Literal(text),
            Some(Token::Number(n)) => Expr::Number(n),
            Some(Token::OpenParen) => {
                let inner = self.or();
                self.expect(Token::CloseParen);
                inner
            }
            Some(Token::Name(name)) => {
                self.expect(Token::OpenParen);
                let mut arguments = Vec::new();
                if self.peek() != Some(&Token::CloseParen) {
                    arguments.push(self.or());
                    while self.peek() == Some(&Token::Comma) {
                        self.at += 1;
                        arguments.push(self.or());
                    }
                }
                self.expect(Token::CloseParen);
                Expr::Call(name, arguments)
            }
            other => panic!("unexpected {other:?} in XPath `{}`", self.expression),
        };
        let predicates = self.predicates();
        let steps = match self.peek() {
            Some(Token::Slash) => {
                self.at += 1;
                self.relative_steps()
            }
            Some(Token::DoubleSlash) => {
                self.at += 1;
                let mut steps = vec![descendant_or_self()];
                steps.extend(self.relative_steps());
                steps
            }
            _ => Vec::new(),
        };
        if predicates.is_empty() && steps.is_empty() {
            return primary;
        }
        Expr::Filter {
            primary: Box::new(primary),
            predicates,
            steps,
        }
    }

    fn relative_steps(&mut self) -> Vec<Step> {
        let mut steps = vec![self.step()];
        loop {
            match self.peek() {
                Some(Token::Slash) => {
                    self.at += 1;
                    steps.push(self.step());
                }
                Some(Token::DoubleSlash) => {
                    self.at += 1;
                    steps.push(descendant_or_self());
                    steps.push(self.step());
                }
                _ => return steps,
            }
        }
    }

    fn step(&mut self) -> Step {
        let (axis, test) = match self.next() {
            Some(Token::Dot) => (Axis::SelfNode, NodeTest::Node),
            Some(Token::DoubleDot) => (Axis::Parent, NodeTest::Node),
            Some(Token::At) => (Axis::Attribute, self.node_test()),
            Some(Token::Name(name)) if self.peek() == Some(&Token::DoubleColon) => {
                self.at += 1;
                let axis = match name.as_str() {
                    "child" => Axis::Child,
                    "attribute" => Axis::Attribute,
                    "parent" => Axis::Parent,
                    "self" => Axis::SelfNode,
                    "descendant" => Axis::Descendant,
                    "descendant-or-self" => Axis::DescendantOrSelf,
                    other => panic!("axis `{other}` is not supported (`{}`)", self.expression),
                };
                (axis, self.node_test())
            }
            Some(Token::Name(_) | Token::Star) => {
                self.at -= 1;
                (Axis::Child, self.node_test())
            }
            other => panic!(
                "expected a step, found {other:?} in XPath `{}`",
                self.expression
            ),
        };
        Step {
            axis,
            test,
            predicates: self.predicates(),
        }
    }

    fn node_test(&mut self) -> NodeTest {
        match self.next() {
            Some(Token::Star) => NodeTest::Any,
            Some(Token::Name(name)) if self.peek() == Some(&Token::OpenParen) => {
                self.expect(Token::OpenParen);
                self.expect(Token::CloseParen);
                match name.as_str() {
                    "text" => NodeTest::Text,
                    "node" => NodeTest::Node,
                    other => panic!("node test `{other}()` is not supported"),
                }
            }
            Some(Token::Name(name)) => match name.split_once(':') {
                Some(("xml", local)) => NodeTest::Name(Some(XML_NAMESPACE), local.to_string()),
                Some((prefix, _)) => panic!("unknown namespace prefix `{prefix}`"),
                None => NodeTest::Name(None, name),
            },
            other => panic!(
                "expected a node test, found {other:?} in `{}`",
                self.expression
            ),
        }
    }

    fn predicates(&mut self) -> Vec<Expr> {
        let mut predicates = Vec::new();
        while self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            predicates.push(self.or());
            self.expect(Token::CloseBracket);
        }
        predicates
    }
}

fn descendant_or_self() -> Step {
    Step {
        axis: Axis::DescendantOrSelf,
        test: NodeTest::Node,
        predicates: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn evaluate<'a, 'input>(
    expr: &Expr,
    context: Item<'a, 'input>,
    position: usize,
    size: usize,
) -> Value<'a, 'input> {
    let eval = |e: &Expr| evaluate(e, context, position, size);
    match expr {
        Expr::Or(a, b) => Value::Boolean(eval(a).boolean() || eval(b).boolean()),
        Expr::And(a, b) => Value::Boolean(eval(a).boolean() && eval(b).boolean()),
        Expr::Compare(op, a, b) => Value::Boolean(compare(*op, &eval(a), &eval(b))),
        Expr::Add(a, b) => Value::Number(eval(a).number() + eval(b).number()),
        Expr::Subtract(a, b) => Value::Number(eval(a).number() - eval(b).number()),
        Expr::Negate(a) => Value::Number(-eval(a).number()),
        Expr::Union(a, b) => {
            let mut nodes = eval(a).nodes("union");
            nodes.extend(eval(b).nodes("union"));
            Value::Nodes(document_order(nodes))
        }
        Expr::Path { absolute, steps } => {
            let start = if *absolute {
                Item::Node(context.node().document().root())
            } else {
                context
            };
            Value::Nodes(walk(vec![start], steps))
        }
        Expr::Filter {
            primary,
            predicates,
            steps,
        } => {
            let mut nodes = eval(primary).nodes("a filter expression");
            for predicate in predicates {
                nodes = filter(nodes, predicate);
            }
            Value::Nodes(walk(nodes, steps))
        }
        Expr::Literal(text) => Value::String(text.clone()),
        Expr::Number(n) => Value::Number(*n),
        Expr::Call(name, arguments) => call(name, arguments, context, position, size),
    }
}

fn call<'a, 'input>(
    name: &str,
    arguments: &[Expr],
    context: Item<'a, 'input>,
    position: usize,
    size: usize,
) -> Value<'a, 'input> {
    let argument = |at: usize| -> Value<'a, 'input> {
        match arguments.get(at) {
            Some(expr) => evaluate(expr, context, position, size),
            None => Value::Nodes(vec![context]),
        }
    };
    let string = |at: usize| argument(at).string();
    match (name, arguments.len()) {
        ("count", 1) => Value::Number(argument(0).nodes("count()").len() as f64),
        ("not", 1) => Value::Boolean(!argument(0).boolean()),
        ("boolean", 1) => Value::Boolean(argument(0).boolean()),
        ("true", 0) => Value::Boolean(true),
        ("false", 0) => Value::Boolean(false),
        ("number", 0 | 1) => Value::Number(argument(0).number()),
        ("string", 0 | 1) => Value::String(string(0)),
        ("sum", 1) => Value::Number(
            argument(0)
                .nodes("sum()")
                .iter()
                .map(|item| string_to_number(&item.string_value()))
                .sum(),
        ),
        ("contains", 2) => Value::Boolean(string(0).contains(&string(1))),
        ("starts-with", 2) => Value::Boolean(string(0).starts_with(&string(1))),
        ("string-length", 0 | 1) => Value::Number(string(0).chars().count() as f64),
        ("normalize-space", 0 | 1) => {
            Value::String(string(0).split_whitespace().collect::<Vec<_>>().join(" "))
        }
        ("position", 0) => Value::Number(position as f64),
        ("last", 0) => Value::Number(size as f64),
        _ => panic!(
            "XPath function {name}() with {} argument(s) is not supported",
            arguments.len()
        ),
    }
}

/// XPath 1.0 comparison (section 3.4).
fn compare(op: Compare, left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Nodes(a), Value::Nodes(b)) => a.iter().any(|x| {
            let x = x.string_value();
            b.iter().any(|y| {
                compare_atoms(
                    op,
                    &Value::String(x.clone()),
                    &Value::String(y.string_value()),
                )
            })
        }),
        (Value::Nodes(nodes), other) => match other {
            Value::Boolean(_) => compare_atoms(op, &Value::Boolean(left.boolean()), other),
            _ => nodes
                .iter()
                .any(|n| compare_atoms(op, &Value::String(n.string_value()), other)),
        },
        (other, Value::Nodes(nodes)) => match other {
            Value::Boolean(_) => compare_atoms(op, other, &Value::Boolean(right.boolean())),
            _ => nodes
                .iter()
                .any(|n| compare_atoms(op, other, &Value::String(n.string_value()))),
        },
        _ => compare_atoms(op, left, right),
    }
}

fn compare_atoms(op: Compare, left: &Value, right: &Value) -> bool {
    match op {
        Compare::Equal | Compare::NotEqual => {
            let equal = match (left, right) {
                (Value::Boolean(_), _) | (_, Value::Boolean(_)) => {
                    left.boolean() == right.boolean()
                }
                (Value::Number(_), _) | (_, Value::Number(_)) => left.number() == right.number(),
                _ => left.string() == right.string(),
            };
            equal == (op == Compare::Equal)
        }
        _ => {
            let ordering = left.number().partial_cmp(&right.number());
            match (op, ordering) {
                (_, None) => false,
                (Compare::Less, Some(o)) => o == Ordering::Less,
                (Compare::LessEqual, Some(o)) => o != Ordering::Greater,
                (Compare::Greater, Some(o)) => o == Ordering::Greater,
                (Compare::GreaterEqual, Some(o)) => o != Ordering::Less,
                _ => unreachable!(),
            }
        }
    }
}

fn walk<'a, 'input>(start: Vec<Item<'a, 'input>>, steps: &[Step]) -> Vec<Item<'a, 'input>> {
    let mut current = start;
    for step in steps {
        let mut next = Vec::new();
        for item in &current {
            let mut selected = axis(*item, step);
            for predicate in &step.predicates {
                selected = filter(selected, predicate);
            }
            next.extend(selected);
        }
        current = document_order(next);
    }
    current
}

/// The nodes of `step`'s axis from `item` that pass its node test, in axis order.
fn axis<'a, 'input>(item: Item<'a, 'input>, step: &Step) -> Vec<Item<'a, 'input>> {
    let Item::Node(node) = item else {
        // An attribute has no children or attributes; its parent is its element.
        return match step.axis {
            Axis::Parent if matches!(step.test, NodeTest::Node) => vec![Item::Node(item.node())],
            Axis::SelfNode if matches!(step.test, NodeTest::Node) => vec![item],
            _ => Vec::new(),
        };
    };
    let candidates: Vec<Node> = match step.axis {
        Axis::Attribute => {
            return node
                .attributes()
                .enumerate()
                .filter(|(_, attribute)| match &step.test {
                    NodeTest::Any | NodeTest::Node => true,
                    NodeTest::Name(namespace, local) => {
                        attribute.name() == local && attribute.namespace() == *namespace
                    }
                    NodeTest::Text => false,
                })
                .map(|(index, _)| Item::Attribute(node, index))
                .collect();
        }
        Axis::Child => node.children().collect(),
        Axis::Parent => node.parent().into_iter().collect(),
        Axis::SelfNode => vec![node],
        Axis::Descendant => node.descendants().skip(1).collect(),
        Axis::DescendantOrSelf => node.descendants().collect(),
    };
    candidates
        .into_iter()
        .filter(|n| match &step.test {
            NodeTest::Node => true,
            NodeTest::Text => n.is_text(),
            NodeTest::Any => n.is_element(),
            NodeTest::Name(namespace, local) => {
                n.is_element()
                    && n.tag_name().name() == local
                    && n.tag_name().namespace() == *namespace
            }
        })
        .map(Item::Node)
        .collect()
}

fn filter<'a, 'input>(items: Vec<Item<'a, 'input>>, predicate: &Expr) -> Vec<Item<'a, 'input>> {
    let size = items.len();
    items
        .into_iter()
        .enumerate()
        .filter(
            |(index, item)| match evaluate(predicate, *item, index + 1, size) {
                Value::Number(n) => n == (index + 1) as f64,
                other => other.boolean(),
            },
        )
        .map(|(_, item)| item)
        .collect()
}

fn document_order<'a, 'input>(mut items: Vec<Item<'a, 'input>>) -> Vec<Item<'a, 'input>> {
    items.sort_by_key(Item::order_key);
    items.dedup_by_key(|item| item.order_key());
    items
}

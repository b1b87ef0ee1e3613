//! Every language against its real image: its example says hello; a program reads stdin and
//! arguments and exits with its code; a runtime error ends with its exit code or signal; a
//! program that does not compile is a compile error (compiled languages); a busy loop hits the
//! time limit. The programs are data, in tests/languages/<name>.toml. Then multi-file
//! programs, preinstalled packages and the declared versions.

mod common;

use codebeaker::languages::Languages;
use common::{test_config, TestNode};
use serde::Deserialize;
use serde_json::{json, Value};

/// One language's test programs (tests/languages/<name>.toml).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Programs {
    echo: Echo,
    error: Failing,
    /// Compiled languages only.
    broken: Option<Program>,
    spin: Program,
}

/// Reads stdin ("world\n") and prints "hello world" with the arguments; exits 3 unless told.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Echo {
    code: String,
    #[serde(default = "Echo::args")]
    args: Vec<String>,
    #[serde(default = "Echo::stdout")]
    stdout: String,
    #[serde(default = "Echo::exit_code")]
    exit_code: i64,
}

impl Echo {
    fn args() -> Vec<String> {
        vec!["x".into(), "y z".into()]
    }
    fn stdout() -> String {
        "hello world x,y z\n".into()
    }
    fn exit_code() -> i64 {
        3
    }
}

/// Fails at run time with this exit code, and this signal if one killed it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Failing {
    code: String,
    exit_code: i64,
    signal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Program {
    code: String,
}

fn programs(language: &str) -> Programs {
    let path = format!(
        "{}/tests/languages/{language}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs the language's five programs at once on a node of its own and checks each ending.
async fn check_language(name: &str) {
    let languages = Languages::load(None).unwrap();
    let language = languages.get(name).unwrap();
    let programs = programs(name);
    let node = TestNode::start(2).await;
    let run = |code: &str, extra: Value| {
        let mut request = json!({"language": name, "code": code, "timeout": 20});
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        node.run(request)
    };
    let echo = &programs.echo;
    let broken = programs.broken.as_ref().map(|b| b.code.as_str());
    let (hello, echoed, failed, spun, broke) = tokio::join!(
        run(&language.example, json!({})),
        run(&echo.code, json!({"stdin": "world\n", "args": echo.args})),
        run(&programs.error.code, json!({})),
        run(&programs.spin.code, json!({"timeout": 2})),
        async {
            match broken {
                Some(code) => Some(run(code, json!({})).await),
                None => None,
            }
        },
    );
    let compiled = language.compile.is_some();

    assert_eq!(hello["status"], "completed", "{name} hello: {hello}");
    assert_eq!(hello["stdout"], "hello, world\n", "{name} hello: {hello}");
    assert_eq!(hello["exit_code"], 0, "{name} hello: {hello}");
    assert_eq!(
        hello["compile"]["exit_code"] == 0,
        compiled,
        "{name} hello: {hello}"
    );

    assert_eq!(echoed["status"], "completed", "{name} echo: {echoed}");
    assert_eq!(
        echoed["stdout"],
        echo.stdout.as_str(),
        "{name} echo: {echoed}"
    );
    assert_eq!(echoed["exit_code"], echo.exit_code, "{name} echo: {echoed}");

    let error = &programs.error;
    assert_eq!(failed["status"], "completed", "{name} error: {failed}");
    assert_eq!(
        failed["exit_code"], error.exit_code,
        "{name} error: {failed}"
    );
    assert_eq!(
        failed["signal"],
        json!(error.signal),
        "{name} error: {failed}"
    );

    assert_eq!(spun["status"], "time_limit_exceeded", "{name} spin: {spun}");
    assert_eq!(spun["exit_code"], Value::Null, "{name} spin: {spun}");

    assert_eq!(
        broke.is_some(),
        compiled,
        "{name}: a compiled language has a program that does not compile"
    );
    if let Some(broke) = broke {
        assert_eq!(broke["status"], "compile_error", "{name} broken: {broke}");
        let compile = &broke["compile"];
        assert_ne!(compile["exit_code"], 0, "{name} broken: {compile}");
        assert_eq!(compile["timed_out"], false, "{name} broken: {compile}");
        let said = format!(
            "{}{}",
            compile["stdout"].as_str().unwrap(),
            compile["stderr"].as_str().unwrap()
        );
        assert!(!said.trim().is_empty(), "{name}: the compiler says why");
        assert_eq!(
            broke["exit_code"],
            Value::Null,
            "{name}: the program did not run"
        );
    }
}

/// One test per language, so that each passes or fails by name (`languages each::kotlin`).
macro_rules! every_language {
    ($($name:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        mod each {
            $(
                #[tokio::test]
                async fn $name() {
                    super::check_language(stringify!($name)).await
                }
            )*
        }
    };
}

every_language!(
    python, javascript, typescript, csharp, go, c, cpp, rust, java, ruby, php, bash, lua, perl, r,
    tcl, sqlite, nasm, fortran, pascal, ada, d, cobol, ocaml, haskell, commonlisp, scheme, prolog,
    racket, erlang, elixir, octave, nim, crystal, kotlin, scala, clojure, groovy, zig,
);

#[test]
fn every_language_has_its_test_and_programs() {
    let languages = Languages::load(None).unwrap();
    let mut defined = languages.names();
    defined.sort();
    let mut tested = TESTED.to_vec();
    tested.sort();
    assert_eq!(tested, defined, "one test per language in languages.toml");
    let dir = format!("{}/tests/languages", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".toml")
                .to_string()
        })
        .collect();
    files.sort();
    assert_eq!(files, defined, "one file of programs per language");
    for language in languages.all() {
        let programs = programs(&language.name);
        assert_eq!(
            programs.broken.is_some(),
            language.compile.is_some(),
            "{}: a program that does not compile, for compiled languages only",
            language.name
        );
    }
}

#[tokio::test]
async fn a_compiler_that_runs_past_its_limit_is_a_compile_error_that_says_so() {
    let mut config = test_config(1);
    config.limits.compile_timeout_secs = 0.5;
    let node = TestNode::with_config(config).await;
    // Each macro doubles the expression: the preprocessor and parser face about a million terms.
    let mut code: String = "#define X0 1\n".into();
    for i in 1..=20 {
        code += &format!("#define X{i} X{p}+X{p}\n", p = i - 1);
    }
    code += "int main(void) { return X20 > 0 ? 0 : 1; }\n";
    let started = std::time::Instant::now();
    let r = node.run(json!({"language": "c", "code": code})).await;
    assert_eq!(r["status"], "compile_error", "{r}");
    assert_eq!(r["compile"]["timed_out"], true, "{}", r["compile"]);
    assert_eq!(r["compile"]["exit_code"], Value::Null);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the compiler was stopped"
    );
}

#[tokio::test]
async fn multi_file_programs_in_python_java_and_c() {
    let node = TestNode::start(3).await;
    let python = node.run(json!({
        "language": "python",
        "code": "from util import greet\nfrom pkg.deep import VALUE\nprint(greet('files'), VALUE)",
        "files": [
            {"name": "util.py", "content": "def greet(who):\n    return 'hi ' + who"},
            {"name": "pkg/deep.py", "content": "VALUE = 42"},
            {"name": "pkg/__init__.py", "content": ""}
        ]
    }));
    let java = node.run(json!({
        "language": "java",
        "code": "public class Main { public static void main(String[] a) { System.out.println(Helper.twice(21)); } }",
        "files": [{"name": "Helper.java", "content": "public class Helper { static int twice(int x) { return 2 * x; } }"}]
    }));
    let c = node.run(json!({
        "language": "c",
        "code": "#include <stdio.h>\n#include \"util.h\"\nint main(void) { printf(\"%d\\n\", add(40, 2)); return 0; }",
        "files": [
            {"name": "util.h", "content": "int add(int a, int b);"},
            // base64 of: int add(int a, int b) { return a + b; }
            {"name": "util.c", "content": "aW50IGFkZChpbnQgYSwgaW50IGIpIHsgcmV0dXJuIGEgKyBiOyB9", "encoding": "base64"}
        ]
    }));
    let (python, java, c) = tokio::join!(python, java, c);
    assert_eq!(python["stdout"], "hi files 42\n", "{python}");
    assert_eq!(java["stdout"], "42\n", "{java}");
    assert_eq!(c["stdout"], "42\n", "{c}");
}

#[tokio::test]
async fn preinstalled_packages_import_without_network() {
    let node = TestNode::start(2).await;
    let numpy = node.run(json!({
        "language": "python",
        "code": "import numpy as np\nimport pandas, scipy, requests, bs4, flask, django, PIL, matplotlib, pytest\nprint(int(np.arange(5).sum()))",
        "packages": ["numpy", "pandas", "scipy", "requests", "beautifulsoup4", "flask", "django", "pillow", "matplotlib", "pytest"],
        "timeout": 20
    }));
    let lodash = node.run(json!({
        "language": "javascript",
        "code": "const _ = require('lodash');\nfor (const m of ['axios', 'moment', 'express', 'react', 'vue', 'chalk', 'commander']) require(m);\nconsole.log(JSON.stringify(_.chunk([1, 2, 3, 4], 2)));",
        "packages": ["lodash", "axios", "moment", "express", "react", "vue", "chalk", "commander"],
        "timeout": 20
    }));
    let (numpy, lodash) = tokio::join!(numpy, lodash);
    assert_eq!(numpy["stdout"], "10\n", "{numpy}");
    assert_eq!(lodash["stdout"], "[[1,2],[3,4]]\n", "{lodash}");
}

#[tokio::test]
async fn a_package_outside_the_list_is_422_naming_the_allowed_ones() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "python", "code": "import torch", "packages": ["torch"]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "package_not_allowed");
    assert_eq!(body["error"]["field"], "packages");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("allowed: numpy, pandas"));
    let (status, body) = node
        .post(json!({"language": "c", "code": "int main(){}", "packages": ["openssl"]}))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed: none"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_language_lists_every_known_name() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "brainfuck", "code": "+"}))
        .await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    for name in Languages::load(None).unwrap().names() {
        assert!(message.contains(name), "{name} missing from: {message}");
    }
}

#[test]
fn the_declared_versions_are_what_the_images_run() {
    for language in Languages::load(None).unwrap().all() {
        let output = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", "--entrypoint", ""])
            .arg(&language.image)
            .args(&language.version_command)
            .output()
            .expect("docker runs");
        let said =
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains(&language.version),
            "{}: declared {}, image says {said}",
            language.name,
            language.version
        );
    }
}

#[test]
fn setup_refuses_an_unknown_language_or_argument_and_says_what_it_takes() {
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup.sh");
    let output = std::process::Command::new(setup)
        .args(["--languages", "python,nosuch"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no language named nosuch"), "{said}");
    for name in Languages::load(None).unwrap().names() {
        assert!(said.contains(name), "{name} missing from: {said}");
    }
    let output = std::process::Command::new(setup)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("unknown argument: --bogus") && said.contains("--languages default|all|NAME"),
        "{said}"
    );
}

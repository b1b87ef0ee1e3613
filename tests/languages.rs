//! Every language: hello world, stdin, args and exit code; compile errors for compiled ones;
//! multi-file programs; preinstalled packages; the declared versions.

mod common;

use codebeaker::languages::Languages;
use common::{test_config, TestNode};
use serde_json::{json, Value};

/// Reads all of stdin, prints "hello <stdin trimmed> <args joined by commas>", exits 3.
const ECHO: &[(&str, &str)] = &[
    ("python", "import sys\ndata = sys.stdin.read()\nprint('hello', data.strip(), ','.join(sys.argv[1:]))\nsys.exit(3)"),
    ("javascript", "const data = require('fs').readFileSync(0, 'utf8');\nconsole.log('hello', data.trim(), process.argv.slice(2).join(','));\nprocess.exit(3);"),
    ("typescript", "const fs = require('fs');\nconst data: string = fs.readFileSync(0, 'utf8');\nconst args: string[] = process.argv.slice(2);\nconsole.log('hello', data.trim(), args.join(','));\nprocess.exit(3);"),
    ("csharp", "using System;\nclass Program {\n  static int Main(string[] args) {\n    var data = Console.In.ReadToEnd();\n    Console.WriteLine(\"hello \" + data.Trim() + \" \" + string.Join(\",\", args));\n    return 3;\n  }\n}"),
    ("go", "package main\n\nimport (\n\t\"fmt\"\n\t\"io\"\n\t\"os\"\n\t\"strings\"\n)\n\nfunc main() {\n\tdata, _ := io.ReadAll(os.Stdin)\n\tfmt.Println(\"hello\", strings.TrimSpace(string(data)), strings.Join(os.Args[1:], \",\"))\n\tos.Exit(3)\n}"),
    ("c", "#include <stdio.h>\nint main(int argc, char **argv) {\n  char buf[256] = {0};\n  size_t n = fread(buf, 1, sizeof buf - 1, stdin);\n  while (n && buf[n - 1] == '\\n') buf[--n] = 0;\n  printf(\"hello %s \", buf);\n  for (int i = 1; i < argc; i++) printf(i > 1 ? \",%s\" : \"%s\", argv[i]);\n  printf(\"\\n\");\n  return 3;\n}"),
    ("cpp", "#include <iostream>\n#include <iterator>\n#include <string>\nint main(int argc, char **argv) {\n  std::string data((std::istreambuf_iterator<char>(std::cin)), {});\n  while (!data.empty() && data.back() == '\\n') data.pop_back();\n  std::cout << \"hello \" << data << \" \";\n  for (int i = 1; i < argc; i++) std::cout << (i > 1 ? \",\" : \"\") << argv[i];\n  std::cout << std::endl;\n  return 3;\n}"),
    ("rust", "use std::io::Read;\nfn main() {\n    let mut data = String::new();\n    std::io::stdin().read_to_string(&mut data).unwrap();\n    let args: Vec<String> = std::env::args().skip(1).collect();\n    println!(\"hello {} {}\", data.trim(), args.join(\",\"));\n    std::process::exit(3);\n}"),
    ("java", "public class Main {\n  public static void main(String[] args) throws Exception {\n    String data = new String(System.in.readAllBytes()).trim();\n    System.out.println(\"hello \" + data + \" \" + String.join(\",\", args));\n    System.exit(3);\n  }\n}"),
    ("ruby", "data = STDIN.read\nputs \"hello #{data.strip} #{ARGV.join(',')}\"\nexit 3"),
    ("php", "<?php\n$data = stream_get_contents(STDIN);\necho 'hello ' . trim($data) . ' ' . implode(',', array_slice($argv, 1)) . \"\\n\";\nexit(3);"),
    ("bash", "data=$(cat)\necho \"hello $data $(IFS=,; echo \"$*\")\"\nexit 3"),
    ("lua", "local data = io.read('a'):gsub('%s+$', '')\nprint('hello ' .. data .. ' ' .. table.concat(arg, ','))\nos.exit(3)"),
];

/// Programs that do not compile, for each compiled language.
const BROKEN: &[(&str, &str)] = &[
    (
        "typescript",
        "const n: number = 'not a number';\nconsole.log(n);",
    ),
    (
        "csharp",
        "class Program { static void Main() { int x = \"text\"; } }",
    ),
    ("go", "package main\n\nfunc main() { undefinedThing() }"),
    ("c", "int main(void) { return missing; }"),
    ("cpp", "int main() { return missing; }"),
    ("rust", "fn main() { let x: u32 = \"text\"; }"),
    (
        "java",
        "public class Main { public static void main(String[] a) { int x = \"text\"; } }",
    ),
];

#[tokio::test]
async fn every_language_says_hello_reads_stdin_takes_args_and_exits_with_its_code() {
    let node = TestNode::start(3).await;
    let languages = Languages::load(None).unwrap();
    assert_eq!(
        ECHO.len(),
        languages.all().len(),
        "every language has a case here"
    );
    let runs = ECHO.iter().map(|(language, code)| {
        let node = &node;
        async move {
            let request = json!({"language": language, "code": code, "stdin": "world\n", "args": ["x", "y z"], "timeout": 20});
            (language, node.run(request).await)
        }
    });
    for (language, r) in futures::future::join_all(runs).await {
        assert_eq!(r["status"], "completed", "{language}: {r}");
        assert_eq!(r["stdout"], "hello world x,y z\n", "{language}: {r}");
        assert_eq!(r["exit_code"], 3, "{language}");
        let compiled = languages.get(language).unwrap().compile.is_some();
        assert_eq!(
            r["compile"]["exit_code"] == 0,
            compiled,
            "{language}: {}",
            r["compile"]
        );
    }
}

#[tokio::test]
async fn every_example_prints_hello_world() {
    let node = TestNode::start(3).await;
    let languages = Languages::load(None).unwrap();
    let runs = languages.all().iter().map(|l| {
        let node = &node;
        async move {
            (
                &l.name,
                node.run(json!({"language": l.name, "code": l.example, "timeout": 20}))
                    .await,
            )
        }
    });
    for (language, r) in futures::future::join_all(runs).await {
        assert_eq!(r["status"], "completed", "{language}: {r}");
        assert_eq!(r["stdout"], "hello, world\n", "{language}");
    }
}

#[tokio::test]
async fn compile_errors_are_reported_apart_and_nothing_runs() {
    let node = TestNode::start(3).await;
    let runs = BROKEN.iter().map(|(language, code)| {
        let node = &node;
        async move {
            (
                language,
                node.run(json!({"language": language, "code": code})).await,
            )
        }
    });
    for (language, r) in futures::future::join_all(runs).await {
        assert_eq!(r["status"], "compile_error", "{language}: {r}");
        let compile = &r["compile"];
        assert_ne!(compile["exit_code"], 0, "{language}");
        assert_eq!(compile["timed_out"], false);
        let said = format!(
            "{}{}",
            compile["stdout"].as_str().unwrap(),
            compile["stderr"].as_str().unwrap()
        );
        assert!(!said.trim().is_empty(), "{language}: the compiler says why");
        assert_eq!(r["stdout"], "", "{language}");
        assert_eq!(
            r["exit_code"],
            Value::Null,
            "{language}: the program did not run"
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
    let (status, body) = node.post(json!({"language": "cobol", "code": "x"})).await;
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

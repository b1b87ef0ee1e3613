"""Judge0's own Python SDK (judge0 0.0.8, unmodified) against CodeBeaker's Judge0 API.

Run by tests/judge0.rs as `python sdk.py SCENARIO`; each scenario asserts, and prints what
it saw. The endpoint and headers come from the environment: CB_ENDPOINT and CB_HEADERS for
an explicit `judge0.Client`, or the SDK's own JUDGE0_CE_ENDPOINT and JUDGE0_CE_AUTH_HEADERS.
"""

import json
import os
import sys

import judge0
from judge0 import Status


def explicit_client():
    return judge0.Client(os.environ["CB_ENDPOINT"], json.loads(os.environ["CB_HEADERS"]))


HELLO = {
    judge0.C: '#include <stdio.h>\nint main(){char s[32];scanf("%31s",s);printf("hello %s\\n",s);}',
    judge0.CPP: '#include <iostream>\nint main(){std::string s;std::cin>>s;std::cout<<"hello "<<s<<"\\n";}',
    judge0.JAVA: 'import java.util.*;\npublic class Main{public static void main(String[] a){'
    'System.out.println("hello "+new Scanner(System.in).next());}}',
    judge0.JAVASCRIPT: 'const s=require("fs").readFileSync(0,"utf8").trim();console.log("hello "+s);',
    judge0.PYTHON: 'print("hello " + input())',
}


def languages():
    """Every language the tests name runs through a client made with Client(endpoint, headers),
    submitted as one batch and waited for with the SDK's own helpers."""
    client = explicit_client()
    assert client.version == "1.13.1", client.version
    for alias in HELLO:
        assert client.is_language_supported(alias), alias
    ids = {lang.id for lang in client.languages}
    assert {50, 52, 54, 62, 63, 71} <= ids, ids
    assert client.get_language(71).name.startswith("Python ("), client.get_language(71)
    submissions = [
        judge0.Submission(source_code=code, language=alias, stdin="beaker")
        for alias, code in HELLO.items()
    ]
    done = judge0.wait(client=client, submissions=judge0.async_execute(client=client, submissions=submissions))
    for submission in done:
        print(submission.language, submission.status, repr(submission.stdout), submission.time)
        assert submission.status == Status.ACCEPTED, (submission.language, submission.status, submission.compile_output)
        assert submission.stdout == "hello beaker\n", submission.stdout
        assert submission.time is not None and submission.memory > 0
        assert submission.created_at is not None and submission.finished_at is not None


def test_cases():
    """The SDK's test-case helper: one submission per case, each judged against its output."""
    client = explicit_client()
    results = judge0.run(
        client=client,
        source_code="print(int(input()) * 2)",
        language=judge0.PYTHON,
        test_cases=[("2", "4"), ("3", "7"), judge0.TestCase(input="5", expected_output="10  \n")],
    )
    statuses = [r.status for r in results]
    print(statuses)
    assert statuses == [Status.ACCEPTED, Status.WRONG_ANSWER, Status.ACCEPTED], statuses


def full_record():
    """get_submission asks for fields=*: every field comes back, and the SDK takes them all."""
    client = explicit_client()
    submission = judge0.run(client=client, source_code="import sys\nprint(sys.argv[1:])",
                            language=judge0.PYTHON, command_line_arguments="a 'b c'")
    client.get_submission(submission)
    print(submission)
    assert submission.stdout == "['a', 'b c']\n", submission.stdout
    assert submission.source_code.startswith("import sys"), submission.source_code
    assert submission.command_line_arguments == "a 'b c'"
    assert submission.memory_limit > 0 and submission.cpu_time_limit > 0
    assert submission.number_of_runs == 1 and submission.enable_network is False


STATUS_PROGRAMS = [
    # (language, code, extra fields, expected status, expected exit code, expected signal)
    (judge0.PYTHON, "import sys\nsys.exit(1)", {}, Status.RUNTIME_ERROR_NZEC, 1, None),
    (judge0.C, "int main(){volatile int*p=0;*p=1;return 0;}", {}, Status.RUNTIME_ERROR_SIGSEGV, 0, 11),
    (judge0.C, "#include <stdio.h>\nint main(){volatile int a=7,z=0;printf(\"%d\",a/z);}", {}, Status.RUNTIME_ERROR_SIGFPE, 0, 8),
    (judge0.C, "#include <stdlib.h>\nint main(){abort();}", {}, Status.RUNTIME_ERROR_SIGABRT, 0, 6),
    (judge0.C, "int main(){ return x; }", {}, Status.COMPILATION_ERROR, None, None),
    (judge0.PYTHON, "while True: pass", {"cpu_time_limit": 1, "cpu_extra_time": 0.5}, Status.TIME_LIMIT_EXCEEDED, 0, None),
    (judge0.PYTHON, "x = bytearray(400 * 1024 * 1024)\nprint(len(x))", {"memory_limit": 65536}, Status.RUNTIME_ERROR_OTHER, 0, 9),
    (judge0.PYTHON, "print('x' * 10_000_000)", {}, Status.RUNTIME_ERROR_SIGXFSZ, 0, 25),
    (judge0.PYTHON, "print('42')", {"expected_output": "41"}, Status.WRONG_ANSWER, 0, None),
]


def statuses():
    """Every status a program can earn, through the client the SDK builds from the
    environment (JUDGE0_CE_ENDPOINT, JUDGE0_CE_AUTH_HEADERS), with an API key."""
    submissions = [
        judge0.Submission(source_code=code, language=language, **extra)
        for language, code, extra, *_ in STATUS_PROGRAMS
    ]
    done = judge0.wait(submissions=judge0.async_execute(submissions=submissions))
    for submission, (_, code, _, status, exit_code, signal) in zip(done, STATUS_PROGRAMS):
        print(code.splitlines()[0][:40], submission.status, submission.exit_code, submission.exit_signal,
              repr((submission.message or "")[:60]))
        assert submission.status == status, (code, submission.status, status)
        assert submission.exit_code == exit_code, (code, submission.exit_code)
        assert submission.exit_signal == signal, (code, submission.exit_signal)
    compile_error = done[4]
    assert "error" in compile_error.compile_output, compile_error.compile_output
    assert compile_error.stdout is None


def refused_key():
    """A wrong key: the SDK's client cannot even start."""
    try:
        explicit_client()
    except RuntimeError as e:
        print("refused:", e)
        assert "Authentication failed" in str(e)
        return
    raise AssertionError("a client with a wrong key was accepted")


if __name__ == "__main__":
    globals()[sys.argv[1]]()

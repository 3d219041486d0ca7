"""pytest_test: a py_test that runs one pytest file."""

def pytest_test(name, src, deps = [], data = [], size = "medium", **kwargs):
    native.py_test(
        name = name,
        srcs = [src, "//tools/bazel:pytest_main.py"],
        main = "//tools/bazel:pytest_main.py",
        args = ["$(location %s)" % src],
        deps = deps,
        data = data,
        size = size,
        python_version = "PY3",
        **kwargs
    )

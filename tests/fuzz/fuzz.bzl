"""cc_fuzz_target: one fuzz entry point, built two ways.

- `<name>`: under `--config=fuzz` a libFuzzer binary (clang-14, ASan+UBSan); in other
  configurations the same entry point linked with replay_main.cc, which replays the corpus.
- `<name>_smoke_test`: a test that replays the seed corpus and a bounded, deterministic set of
  mutations of it, so every test run exercises the target briefly.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")

def cc_fuzz_target(name, srcs, corpus, deps = [], smoke_size = "small"):
    """Declares `name` and `name_smoke_test`.

    Args:
      name: the fuzz binary.
      srcs: sources defining LLVMFuzzerTestOneInput.
      corpus: a glob of seed inputs (files in one directory).
      deps: libraries under test.
      smoke_size: the smoke test's size (its timeout): "medium" for a target whose inputs are
        costly (signatures, a redactor compiled per input), so the replay fits on a loaded machine.
    """
    cc_binary(
        name = name,
        srcs = srcs,
        linkopts = select({
            "//tests/fuzz:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps + select({
            "//tests/fuzz:libfuzzer": [],
            "//conditions:default": ["//tests/fuzz:replay_main"],
        }),
        testonly = True,
    )
    cc_test(
        name = name + "_smoke_test",
        srcs = srcs,
        data = corpus,
        args = ["$(location %s)" % c for c in corpus],
        deps = deps + ["//tests/fuzz:replay_main"],
        size = smoke_size,
    )

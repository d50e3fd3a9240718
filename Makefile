# Two commands do everything on a fresh Debian 12, Debian 13 or sid machine:
#   make demo    install what the quick start needs (the README's packages), build it and run it
#   make test    install what is missing, build, run the whole ctest suite (3-6 minutes on 2 cores)
# and the supported matrix (README, "Supported versions"), each row a make test:
#   make test-cxx20        this machine's compiler in C++20 (the build checks, not the suite)
#   make test-clang        clang, in C++17, the SIMD suite (test-clang-cxx20: in C++20, the checks and examples)
#   make test-debian13     a fresh Debian 13 chroot: make demo, make test, make test in C++20 (root)
#   make test-sid          a fresh Debian sid chroot: make demo, make test (root)
#   make test-matrix       all of the above, and make test
#   make test-fast-math    make test built with -ffast-math, with g++ and with clang (SIMD kernels; the semantics hold)
# and:
#   make bench       build and run the benchmarks (installs libbenchmark, libtorch); as root also the
#                    libtorch rows under Debian 13's libtorch 2.x in a fresh chroot (BENCH_TORCH2=0: not)
#   make test-long   the exhaustive tests CI leaves out (minutes)
#   make sanitize    the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make golden      regenerate the PyTorch golden values (installs python3-torch)
#   make tsan        the thread-safety test under ThreadSanitizer
#   make tsan-openmp the threaded tests with OpenMP under ThreadSanitizer and LLVM's Archer
#   make valgrind    the examples under valgrind's memcheck
#   make fuzz        the libFuzzer targets against their long-double references (FUZZ_SECONDS, default 60;
#                    FUZZ_FLAGS for libFuzzer, e.g. -seed=N -runs=N); fails on a finding
#   make fuzz-explore  fresh fuzzing from a time-based seed (FUZZ_SECONDS): a finding is saved under
#                    tests/fuzz/findings/ and reported loudly, but the target exits 0 (CI's exploration)
#   make tidy        clang-tidy (.clang-tidy) over the headers, through the strict-warnings consumer
#   make docs        the API reference (Doxygen, docs/Doxyfile) in $(BUILD)-docs/html; fails on a warning
#   make format      apply .clang-format

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# A second language standard's row builds and runs what the standard decides (the strict-warnings
# consumers, the compile-fail checks, the examples, the README snippets, the package consumers), not
# the suite: its values do not depend on the standard, and it runs in C++20 on sid (tests/CMakeLists.txt,
# XLOSS_TEST_SUITE); nor libtorch's parts (CI time: xloss::torch is tested in each release's first row). The -ffast-math rows run the suite on the SIMD kernels only, what such builds
# run (the strict-warnings consumer still compiles the scalar kernels there).
SECOND_STANDARD_FLAGS = -DXLOSS_TEST_SUITE=OFF -DXLOSS_TEST_SCALAR=OFF -DXLOSS_TORCH=OFF -DXLOSS_EXAMPLE_TORCH=OFF
# A build of the SIMD suite alone compiles it as two unity units, one per core.
SIMD_ONLY_FLAGS = -DXLOSS_TEST_SCALAR=OFF -DXLOSS_TEST_UNITY_BATCH=8
# The -ffast-math rows: the SIMD suite alone, not the examples, the strict-warnings consumers or the
# checks beside the suite (snippets, packages, compile failures), which do not depend on it.
FAST_MATH_ROW_FLAGS = $(SIMD_ONLY_FLAGS) -DXLOSS_BUILD_EXAMPLES=OFF -DXLOSS_TEST_WARNINGS=OFF -DXLOSS_TEST_CHECKS=OFF

FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?=

# make bench: flags of the KL benchmark and of the row (distillation, divergence) benchmarks; the
# libtorch version of the JSON's context; the second libtorch (Debian 13's, in a chroot: needs root).
BENCH_KL_FLAGS = --benchmark_min_time=0.05 --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
                 --benchmark_report_aggregates_only=true
BENCH_ROW_FLAGS = --benchmark_min_time=0.2 --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
                  --benchmark_report_aggregates_only=true
# The fused linear step takes seconds: one iteration per run, three runs.
BENCH_LINEAR_FLAGS = --benchmark_min_time=0.01 --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
                     --benchmark_report_aggregates_only=true
TORCH_CONTEXT = --benchmark_context=libtorch=$$(dpkg-query -W -f='$${Version}' libtorch-dev | sed 's/[+~-].*//')
BENCH_TORCH2 ?= $(shell [ "$$(id -u)" -eq 0 ] && echo 1 || echo 0)
torch2 = $$([ -f $(BUILD)-bench/torch2-$(1).json ] && echo --torch2 $(BUILD)-bench/torch2-$(1).json)

# clang-tidy over every public entry point (tests/warnings/consumer.cpp instantiates them in float and
# double) on the SIMD and the scalar kernels; .clang-tidy makes a finding in include/xloss an error.
TIDY_FLAGS = -std=c++17 -Iinclude -fopenmp -Wall -Wextra -DXLOSS_CONSUMER_LINEAR

.PHONY: docs tidy all deps configure build demo test test-cxx20 test-clang test-clang-cxx20 test-fast-math test-debian13 test-sid test-matrix test-long bench sanitize fuzz fuzz-build fuzz-explore tsan tsan-openmp valgrind golden format clean

all: build

# ctest fails when a selection holds no test (a folder configured without tests, say).
CTEST = ctest --output-on-failure --no-tests=error -j $(JOBS)

deps:
	@scripts/install-deps.sh build

# Tests and examples on whatever the folder was configured with before (the README's install step
# turns them off in a folder of its own, but a reused folder must not keep that).
configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DXLOSS_BUILD_TESTS=ON -DXLOSS_BUILD_EXAMPLES=ON $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Only what it runs: the packages of the README's install step, the quick start alone, in a folder
# of its own.
demo:
	@scripts/install-deps.sh demo
	cmake -S . -B $(BUILD)-demo -DCMAKE_BUILD_TYPE=Release -DXLOSS_BUILD_TESTS=OFF -DXLOSS_BUILD_EXAMPLES=ON \
	      -DXLOSS_EXAMPLE_TORCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-demo -j $(JOBS) --target quickstart
	$(BUILD)-demo/examples/quickstart

test: build
	cd $(BUILD) && $(CTEST) -LE long

test-cxx20:
	$(MAKE) test BUILD=$(BUILD)-cxx20 CMAKE_FLAGS="-DCMAKE_CXX_STANDARD=20 $(SECOND_STANDARD_FLAGS) $(CMAKE_FLAGS)"

# clang on the SIMD kernels (g++ runs the scalar suite on each Debian release) and the strict-warnings
# consumers; the examples and the checks beside the suite, which do not depend on the suite's
# standard, are clang's C++20 row's.
test-clang:
	@scripts/install-deps.sh clang
	$(MAKE) test BUILD=$(BUILD)-clang CMAKE_FLAGS="-DCMAKE_CXX_COMPILER=clang++ $(SIMD_ONLY_FLAGS) \
	        -DXLOSS_BUILD_EXAMPLES=OFF -DXLOSS_TEST_CHECKS=OFF $(CMAKE_FLAGS)"

test-clang-cxx20:
	@scripts/install-deps.sh clang
	$(MAKE) test BUILD=$(BUILD)-clang-cxx20 CMAKE_FLAGS="-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_STANDARD=20 $(SECOND_STANDARD_FLAGS) \
	        $(CMAKE_FLAGS)"

# The whole suite built as training code often is: -ffast-math (and its flush-to-zero start-up).
test-fast-math:
	$(MAKE) test BUILD=$(BUILD)-fast-math CMAKE_FLAGS="-DCMAKE_CXX_FLAGS=-ffast-math $(FAST_MATH_ROW_FLAGS) $(CMAKE_FLAGS)"
	@scripts/install-deps.sh clang
	$(MAKE) test BUILD=$(BUILD)-clang-fast-math \
	        CMAKE_FLAGS="-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS=-ffast-math $(FAST_MATH_ROW_FLAGS) $(CMAKE_FLAGS)"

# Debian 13 with its libtorch (2.x) installed too: xloss::torch's tests against it.
test-debian13:
	scripts/test-in-chroot.sh --torch trixie 20

test-sid:
	scripts/test-in-chroot.sh sid

test-matrix: test test-cxx20 test-clang test-clang-cxx20 test-debian13 test-sid

# Tests too long for CI (exhaustive checks over every float), run by hand.
test-long: build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -V -L long

bench:
	@scripts/install-deps.sh bench
	cmake -S . -B $(BUILD)-bench -DCMAKE_BUILD_TYPE=Release -DXLOSS_BUILD_TESTS=OFF -DXLOSS_BUILD_EXAMPLES=OFF \
	      -DXLOSS_BUILD_BENCHMARKS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-bench -j $(JOBS)
	$(BUILD)-bench/benchmarks/xloss_bench $(BENCH_KL_FLAGS) $(TORCH_CONTEXT) \
	      --benchmark_out=$(BUILD)-bench/bench.json --benchmark_out_format=json $(BENCH_FLAGS)
	$(BUILD)-bench/benchmarks/xloss_bench_distill $(BENCH_ROW_FLAGS) $(TORCH_CONTEXT) \
	      --benchmark_out=$(BUILD)-bench/distill.json --benchmark_out_format=json $(BENCH_FLAGS)
	$(BUILD)-bench/benchmarks/xloss_bench_divergence $(BENCH_ROW_FLAGS) $(TORCH_CONTEXT) \
	      --benchmark_out=$(BUILD)-bench/divergence.json --benchmark_out_format=json $(BENCH_FLAGS)
	$(BUILD)-bench/benchmarks/xloss_bench_cross_entropy $(BENCH_ROW_FLAGS) $(TORCH_CONTEXT) \
	      --benchmark_out=$(BUILD)-bench/cross_entropy.json --benchmark_out_format=json $(BENCH_FLAGS)
	$(BUILD)-bench/benchmarks/xloss_bench_float16 $(BENCH_ROW_FLAGS) \
	      --benchmark_out=$(BUILD)-bench/float16.json --benchmark_out_format=json $(BENCH_FLAGS)
	@if [ -x $(BUILD)-bench/benchmarks/xloss_bench_fused_linear ]; then \
	    $(BUILD)-bench/benchmarks/xloss_bench_fused_linear $(BENCH_LINEAR_FLAGS) $(TORCH_CONTEXT) \
	        --benchmark_out=$(BUILD)-bench/fused_linear.json --benchmark_out_format=json $(BENCH_FLAGS) && \
	    for run in "xloss 1024" "xloss 4096" "xloss 16384" "torch 1024" "torch 4096" \
	               "xloss-kd 1024" "xloss-kd 4096" "xloss-kd 16384" "torch-kd 1024" "torch-kd 4096"; do \
	        $(BUILD)-bench/benchmarks/xloss_bench_fused_linear --memory $$run || exit 1; \
	    done; \
	else echo "xloss: no BLAS found; the fused linear benchmark is left out"; fi
	rm -f $(BUILD)-bench/torch2-*.json
	@if [ "$(BENCH_TORCH2)" = 1 ]; then \
	    XLOSS_BENCH_KL_FLAGS="$(BENCH_KL_FLAGS) $(BENCH_FLAGS)" XLOSS_BENCH_ROW_FLAGS="$(BENCH_ROW_FLAGS) $(BENCH_FLAGS)" \
	        scripts/bench-torch-chroot.sh $(BUILD)-bench || echo "xloss: the libtorch 2.x baseline failed; left out"; \
	else echo "xloss: the libtorch 2.x baseline (a Debian 13 chroot) needs root; left out"; fi
	/usr/bin/python3 scripts/bench_report.py $(BUILD)-bench/bench.json $(call torch2,kl_div) \
	      --plot $(BUILD)-bench/throughput.png
	/usr/bin/python3 scripts/bench_report.py --rows distill $(BUILD)-bench/distill.json $(call torch2,distill)
	/usr/bin/python3 scripts/bench_report.py --rows divergence $(BUILD)-bench/divergence.json \
	      $(call torch2,divergence)
	/usr/bin/python3 scripts/bench_report.py --rows cross_entropy $(BUILD)-bench/cross_entropy.json \
	      $(call torch2,cross_entropy)

# Unoptimized (instrumented -O1 code took 20 minutes to compile for one test file) and on the AVX2
# kernels: xsimd 8.1's AVX-512BW integer select does not compile at -O0 (GCC's intrinsics are macros
# there), and a batch width other than the rest of CI's puts other tails under the sanitizers.
sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
	      -DCMAKE_CXX_FLAGS="-O0 -march=haswell -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	      -DXLOSS_NATIVE=OFF -DXLOSS_TEST_SCALAR=OFF -DXLOSS_TEST_WARNINGS=OFF -DXLOSS_BUILD_EXAMPLES=OFF -DXLOSS_TEST_UNITY_BATCH=8 \
	      $(CMAKE_FLAGS)
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && $(CTEST) -LE 'long|compile_check'

# The API reference: the public headers (no detail) and the README as its main page, every public
# entity documented (Doxygen's warnings are errors).
docs:
	@scripts/install-deps.sh docs
	rm -rf $(BUILD)-docs && mkdir -p $(BUILD)-docs
	/usr/bin/python3 scripts/docs_mainpage.py README.md $(BUILD)-docs/README.md
	XLOSS_DOCS_DIR=$(BUILD)-docs doxygen docs/Doxyfile
	@echo "xloss: the API reference is $(BUILD)-docs/html/index.html, with no Doxygen warning"

# clang's libFuzzer with ASan and UBSan, and OpenMP, built by CMake (tests/fuzz/CMakeLists.txt,
# XLOSS_BUILD_FUZZERS). The checked-in corpus is copied, so a run never changes it; a mismatch or a
# crash fails, and leaves its input in $(BUILD)-fuzz.
# Four targets: fuzz_kl_div (kl_div, its gradients and the fused pass), fuzz_distill (the
# distillation loss from logits), fuzz_options (the option path: logits input, weights, axes,
# epsilon, divisor) and fuzz_divergence (forward_kl, reverse_kl, generalized_jsd, symmetric_kl on the row engine,
# with labels); each has its corpus, and its regression inputs once it found something, under tests/fuzz.
FUZZ_TARGETS = kl_div distill options divergence cross_entropy
fuzz-build:
	@scripts/install-deps.sh fuzz
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= -DXLOSS_BUILD_TESTS=OFF \
	      -DXLOSS_BUILD_EXAMPLES=OFF -DXLOSS_INSTALL=OFF -DXLOSS_BUILD_FUZZERS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-fuzz -j $(JOBS)

# The targets run side by side, one per core (scripts/fuzz-target.sh); any finding fails.
fuzz: fuzz-build
	printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(JOBS) -I{} \
	    scripts/fuzz-target.sh replay $(BUILD)-fuzz {} $(FUZZ_SECONDS) $(FUZZ_FLAGS)

# Exploration: a new seed each run, from the corpus and past findings; never fails, so that CI cannot
# be held up by what it finds. A crash or mismatch leaves its input in tests/fuzz/findings/ (commit it
# to the target's regressions with the fix) and a banner in the log. FUZZ_SECONDS per target.
FUZZ_SEED ?= $(shell date +%s)
fuzz-explore: fuzz-build
	printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(JOBS) -I{} \
	    scripts/fuzz-target.sh explore $(BUILD)-fuzz {} $(FUZZ_SECONDS) $(FUZZ_SEED)

# The thread-safety test under ThreadSanitizer (std::thread only: no OpenMP, which TSan does not see).
tsan: deps
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="-fsanitize=thread" \
	      -DXLOSS_TEST_SCALAR=OFF -DXLOSS_BUILD_EXAMPLES=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-tsan -j $(JOBS) --target xloss_tests_threads
	TSAN_OPTIONS=halt_on_error=1 $(BUILD)-tsan/tests/xloss_tests_threads

# The threaded tests with OpenMP under ThreadSanitizer: clang with LLVM's OpenMP runtime, whose Archer
# tool (libarcher.so, Debian's libomp-dev) tells TSan about OpenMP's synchronisation.
ARCHER ?= $(shell clang++ -print-resource-dir 2>/dev/null)/../../libarcher.so
tsan-openmp: deps
	@scripts/install-deps.sh clang
	cmake -S . -B $(BUILD)-tsan-openmp -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	      -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DXLOSS_TEST_SCALAR=OFF -DXLOSS_BUILD_EXAMPLES=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-tsan-openmp -j $(JOBS) --target xloss_tests_openmp_threads
	test -f $(ARCHER) || { echo "libarcher.so not found at $(ARCHER)"; exit 1; }
	TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" OMP_TOOL_LIBRARIES=$(ARCHER) \
	      ARCHER_OPTIONS="verbose=1" $(BUILD)-tsan-openmp/tests/xloss_tests_openmp_threads "[threads]"

# The examples under valgrind's memcheck, built for baseline x86-64 (valgrind 3.19 has no AVX-512).
# The MPI example is left out: Open MPI's own start-up is not memcheck-clean.
VALGRIND_EXAMPLES = quickstart train_soft_labels distill interop dispatch
valgrind: deps
	@scripts/install-deps.sh valgrind
	cmake -S . -B $(BUILD)-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXLOSS_NATIVE=OFF -DXLOSS_BUILD_TESTS=OFF \
	      -DXLOSS_EXAMPLE_TORCH=OFF -DXLOSS_TORCH=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-valgrind -j $(JOBS) --target $(VALGRIND_EXAMPLES)
	for example in $(VALGRIND_EXAMPLES); do \
	    valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	        $(BUILD)-valgrind/examples/$$example > /dev/null || exit 1; \
	    echo "valgrind memcheck: $$example clean"; \
	done

golden:
	@scripts/install-deps.sh golden
	for generator in tests/golden/generate_*.py; do /usr/bin/python3 $$generator || exit 1; done

format:
	clang-format -i $$(git ls-files '*.hpp' '*.cpp')

# Every folder the targets above make (a chroot's folder only when no chroot is mounted there).
clean:
	rm -rf $(BUILD) $(BUILD)-demo $(BUILD)-bench $(BUILD)-asan $(BUILD)-fuzz $(BUILD)-tsan $(BUILD)-tsan-openmp \
	       $(BUILD)-valgrind $(BUILD)-cxx20 $(BUILD)-clang $(BUILD)-clang-cxx20 $(BUILD)-fast-math \
	       $(BUILD)-clang-fast-math $(BUILD)-install
	@if grep -q " $(CURDIR)/build-chroot" /proc/mounts; then echo "build-chroot: mounted, left alone"; \
	 else rm -rf build-chroot; fi

tidy:
	@scripts/install-deps.sh tidy
	clang-tidy --quiet tests/warnings/consumer.cpp -- $(TIDY_FLAGS) -march=native
	clang-tidy --quiet tests/warnings/consumer.cpp -- $(TIDY_FLAGS) -DXLOSS_NO_SIMD

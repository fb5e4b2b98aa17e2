package dev.trilens.sweep;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.spark.launcher.JavaModuleOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens sweep`'s flags and grid errors, all refused before Spark starts or any run trains; and its settings. */
class SweepCommandTest {

    @TempDir
    Path tmp;

    private String grid(String yaml) throws IOException {
        Path g = tmp.resolve("g.yaml");
        Files.writeString(g, yaml);
        return g.toString();
    }

    @Test
    void badGridFilesAreOneLineErrorsBeforeAnyRunStarts() throws IOException {
        String out = tmp.resolve("out").toString();
        SweepCli.run("--grid", grid("preset: quick\naxes: {d_mlp: [0], width: [8]}"), "--out", out)
                .failsWith(1, "trilens: error: g.yaml: unknown axis 'width' under axes, expected one of attn_only, "
                        + "d_head, d_mlp, d_model, n_layers, n_heads, d_vocab, n_ctx, layernorm, batch, epochs, ");
        SweepCli.run("--grid", grid("preset: quick\naxes: {d_mlp: []}"), "--out", out)
                .failsWith(1, "trilens: error: g.yaml: axes.d_mlp is empty; expected a list of at least one value");
        SweepCli.run("--grid", grid("preset: quick\naxes: {d_head: [8, 0]}"), "--out", out)
                .failsWith(1, "trilens: error: g.yaml: axes.d_head[1] = 0: --d-head must be >= 1, got 0");
        String big = grid("preset: quick\naxes: {init_seed: [" + IntStream.range(0, 120).mapToObj(String::valueOf)
                .collect(Collectors.joining(", ")) + "]}");
        SweepCli.run("--grid", big, "--out", out).failsWith(1, "trilens: error: " + big + " makes 120 runs "
                + "(init_seed 120), more than --max-runs 100; pass --yes to run them all");
        SweepCli.run("--grid", grid("preset: quick\naxes: {d_mlp: [0, 20]}"), "--max-runs", "1", "--out", out)
                .failsWith(1, "makes 2 runs (d_mlp 2), more than --max-runs 1; pass --yes to run them all");
        // --yes lets the grid through: what stops it now is the next check
        SweepCli.run("--grid", big, "--yes", "--out", out, "--conf", "spark.trilens.injectFailure=nope@1")
                .failsWith(1, "spark.trilens.injectFailure is 'nope@1'; expected RUN_ID@EPOCH with a run of the grid");
        SweepCli.run("--grid", tmp.resolve("missing.yaml").toString(), "--out", out)
                .failsWith(1, "trilens: error: grid file " + tmp.resolve("missing.yaml") + " not found");
        assertThat(tmp.resolve("out")).as("nothing was created: no run started").doesNotExist();
    }

    @Test
    void badFlagsAreOneLineErrors() throws IOException {
        String g = grid("preset: quick\ntrain: {epochs: 1}\naxes: {d_mlp: [0, 20]}");
        String out = tmp.resolve("out").toString();
        SweepCli.run("--out", out).failsWith(2, "Missing required option: '--grid=<grid>'");
        SweepCli.run("--grid", g, "--retries", "-1").failsWith(2, "--retries must be >= 0, got -1");
        SweepCli.run("--grid", g, "--threads-per-run", "0").failsWith(2, "--threads-per-run must be >= 1, got 0");
        SweepCli.run("--grid", g, "--max-runs", "0").failsWith(2, "--max-runs must be >= 1, got 0");
        SweepCli.run("--grid", g, "--master", "local[2,5]", "--retries", "2", "--out", out).failsWith(1,
                "--master local[2,5] gives a run 5 attempts, --retries 2 asks 3; expected F >= 1 in local[N,F], or "
                        + "--retries alone");
        SweepCli.run("--grid", g, "--master", "local[2]", "--threads-per-run", "3", "--out", out).failsWith(1,
                "--threads-per-run 3 is more than the 2 worker threads of --master local[2]; expected at most 2");
        SweepCli.run("--grid", g, "--conf", "spark.speculation=true", "--out", out).failsWith(1,
                "--conf spark.speculation=true would train a run twice at once");
        SweepCli.run("--grid", g, "--conf", "speculation=true", "--out", out).failsWith(1,
                "--conf speculation=true is not a Spark setting; expected KEY=VALUE with KEY starting spark.");
        SweepCli.run("--grid", g, "--conf", "spark.trilens.injectFailure=d_mlp=20@2", "--out", out).failsWith(1,
                "spark.trilens.injectFailure is 'd_mlp=20@2'; expected RUN_ID@EPOCH with a run of the grid and one "
                        + "of its epochs");
        assertThat(tmp.resolve("out")).doesNotExist();
    }

    @Test
    void settingsResolveTheMasterAttemptsAndThreads() {
        int cores = Runtime.getRuntime().availableProcessors();
        SparkSweep.Settings d = SparkSweep.settings(null, null, 1, Map.of(), "t");
        assertThat(d.master()).isEqualTo("local[" + cores + ",3]");
        assertThat(d.maxAttempts()).isEqualTo(3);
        assertThat(d.threads()).isEqualTo(1);
        assertThat(d.local()).isTrue();
        assertThat(d.conf().get("spark.master")).isEqualTo(d.master());
        assertThat(d.conf().get("spark.task.cpus")).isEqualTo("1");
        assertThat(d.conf().get("spark.speculation")).isEqualTo("false");
        assertThat(d.conf().get("spark.ui.enabled")).isEqualTo("false");
        assertThat(d.conf().get("spark.driver.bindAddress")).isEqualTo("127.0.0.1");
        assertThat(d.conf().get("spark.executor.extraJavaOptions")).isEqualTo(JavaModuleOptions.defaultModuleOptions());
        assertThat(d.conf().get("spark.driver.extraJavaOptions")).isEqualTo(JavaModuleOptions.defaultModuleOptions());

        assertThat(SparkSweep.settings("local[2]", 0, 2, Map.of(), "t")).satisfies(s -> {
            assertThat(s.master()).isEqualTo("local[2,1]");
            assertThat(s.maxAttempts()).isEqualTo(1);
            assertThat(s.threads()).isEqualTo(2);
            assertThat(s.conf().get("spark.task.cpus")).isEqualTo("2");
        });
        assertThat(SparkSweep.settings("local[*]", null, 1, Map.of(), "t").master()).isEqualTo("local[*,3]");
        assertThat(SparkSweep.settings("local", 4, 1, Map.of(), "t").master()).isEqualTo("local[1,5]");
        assertThat(SparkSweep.settings("local[3,4]", null, 1, Map.of(), "t").maxAttempts()).isEqualTo(4);

        SparkSweep.Settings c = SparkSweep.settings("spark://10.0.0.1:7077", 1, 2,
                Map.of("spark.executor.extraJavaOptions", "-Dx=1", "spark.executor.memory", "2g"), "t");
        assertThat(c.local()).isFalse();
        assertThat(c.master()).isEqualTo("spark://10.0.0.1:7077");
        assertThat(c.maxAttempts()).isEqualTo(2);
        assertThat(c.conf().get("spark.task.maxFailures")).isEqualTo("2");
        assertThat(c.conf().get("spark.task.cpus")).isEqualTo("2");
        assertThat(c.conf().get("spark.executor.memory")).isEqualTo("2g");
        assertThat(c.conf().get("spark.executor.extraJavaOptions"))
                .isEqualTo(JavaModuleOptions.defaultModuleOptions() + " -Dx=1");
        assertThat(c.conf().contains("spark.ui.enabled")).isFalse();
        // the cores a task gets decide the threads of its run, however they were set
        assertThat(SparkSweep.settings("spark://h:7077", null, 1, Map.of("spark.task.cpus", "4"), "t").threads())
                .isEqualTo(4);
    }

    /**
     * The JVM options the build gives the tests and ./trilens sweep (the pom's trilens.sparkJvmArgs, written to
     * target/spark-jvm.args) are Spark's own list for Java 17, jdk.incubator.vector included; a Spark upgrade that
     * changes the list fails here.
     */
    @Test
    void theLaunchersJvmOptionsAreSparksDocumentedList() {
        String ours = System.getProperty("trilens.sparkJvmArgs");
        assertThat(ours).as("set by the sweep module's surefire configuration").isNotNull();
        // Spark's list, in its order, plus trilens's own: its vector kernels compiled on their own, without loop
        // predication (see ./trilens)
        List<String> own = List.of("-XX:-UseLoopPredicate", "-XX:CompileCommand=quiet",
                "-XX:CompileCommand=dontinline,dev.trilens.model.kernels.VectorOps::*");
        assertThat(ours.split(" ")).containsAll(own);
        assertThat(Arrays.stream(ours.split(" ")).filter(o -> !own.contains(o)))
                .containsExactly(JavaModuleOptions.defaultModuleOptionArray());
        assertThat(Arrays.asList(JavaModuleOptions.defaultModuleOptionArray()))
                .contains("--add-modules=jdk.incubator.vector", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED");
        // and this JVM, started with them, has the Vector API: the kernels a run uses are the fast ones
        assertThat(dev.trilens.model.kernels.Kernels.VECTOR).isTrue();
    }
}

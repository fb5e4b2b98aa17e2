package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class BenchCommandTest extends CliTestBase {

    @Test
    void trainPrintsAMachineReadableLastLine() {
        assertThat(run("bench", "train", "--steps", "1", "--warmup", "0", "--threads", "1")).isZero();
        String[] lines = out().strip().split("\n");
        assertThat(lines[lines.length - 1]).matches("train_ms_per_step=\\d+\\.\\d\\d");
        assertThat(lines[0]).contains("1 threads, 512x50").contains("after 0 warm-up");
    }

    @Test
    void evalPrintsAMachineReadableLastLine() {
        assertThat(run("bench", "eval", "--iters", "1", "--warmup", "0", "--threads", "1")).isZero();
        String[] lines = out().strip().split("\n");
        assertThat(lines[lines.length - 1]).matches("eval_ms=\\d+\\.\\d\\d");
    }

    @Test
    void trainsFromAGivenModel(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        java.nio.file.Path file = dir.resolve("m.safetensors");
        dev.trilens.model.ModelConfig cfg = dev.trilens.model.ModelConfig.arena().withDMlp(0);
        dev.trilens.io.Safetensors.write(dev.trilens.model.Weights.init(cfg, 3), java.util.Map.of(), file);
        assertThat(run("bench", "train", "--steps", "1", "--warmup", "0", "--threads", "1", "--model",
                file.toString())).isZero();
        assertThat(out()).contains("(attn-only)").contains("train_ms_per_step=");
        assertOneLineErrorOnly(1, "not found", "bench", "train", "--model", dir.resolve("none.pt").toString());
    }

    @Test
    void badCountsAreOneLineErrors() {
        assertOneLineErrorOnly(2, "--iters must be >= 1, got 0", "bench", "train", "--steps", "0");
        assertOneLineErrorOnly(2, "--warmup must be >= 0, got -1", "bench", "train", "--warmup", "-1");
        assertOneLineErrorOnly(2, "--threads must be >= 1, got 0", "bench", "train", "--threads", "0");
        assertOneLineError(2, "fast", "bench", "fast");
        assertOneLineErrorOnly(2, "--attn-only and --model do not go together", "bench", "train", "--attn-only",
                "--model", "x.safetensors");
    }
}

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
        assertThat(out()).contains("d_mlp=none").contains("train_ms_per_step=");
        assertOneLineErrorOnly(1, "not found", "bench", "train", "--model", dir.resolve("none.pt").toString());
    }

    @Test
    void badCountsAreOneLineErrors() {
        assertOneLineErrorOnly(2, "--iters must be >= 1, got 0", "bench", "train", "--steps", "0");
        assertOneLineErrorOnly(2, "--warmup must be >= 0, got -1", "bench", "train", "--warmup", "-1");
        assertOneLineErrorOnly(2, "--threads must be >= 1, got 0", "bench", "train", "--threads", "0");
        assertOneLineError(2, "fast", "bench", "fast");
        assertOneLineErrorOnly(2, "the shape flags and --model do not go together", "bench", "train",
                "--attn-only", "--model", "x.safetensors");
    }

    @Test
    void timesAnyShapeTheFlagsDescribe() {
        assertThat(run("bench", "train", "--steps", "1", "--warmup", "0", "--threads", "1", "--d-model", "24",
                "--n-layers", "2", "--n-heads", "3", "--d-head", "8", "--d-mlp", "40", "--d-vocab", "101", "--n-ctx",
                "13", "--layernorm", "--batch", "7")).isZero();
        assertThat(out()).contains("7x13, d_vocab=101 n_ctx=13 d_model=24 n_layers=2 n_heads=3 d_head=8 d_mlp=40 "
                + "normalization=LN");
        assertThat(run("bench", "eval", "--iters", "1", "--warmup", "0", "--threads", "1", "--d-head", "12",
                "--batch", "5")).isZero();
        assertThat(out()).contains("5x50, d_vocab=75 n_ctx=50 d_model=32 n_layers=1 n_heads=1 d_head=12 d_mlp=20");
    }

    @Test
    void badShapesAreOneLineErrors() {
        assertOneLineErrorOnly(2, "--d-model must be >= 1, got 0", "bench", "train", "--d-model", "0");
        assertOneLineErrorOnly(2, "--d-mlp must be >= 0 (0 = attention-only), got -1", "bench", "eval", "--d-mlp", "-1");
        assertOneLineErrorOnly(2, "--d-vocab must be >= 3, got 2", "bench", "train", "--d-vocab", "2");
        assertOneLineErrorOnly(2, "--n-ctx must be >= 3, got 1", "bench", "train", "--n-ctx", "1");
        assertOneLineErrorOnly(2, "--batch must be >= 1, got 0", "bench", "eval", "--batch", "0");
        assertOneLineErrorOnly(2, "--attn-only contradicts --d-mlp 8", "bench", "train", "--attn-only", "--d-mlp",
                "8");
        // 512 x 20000 x 20000 attention weights: refused before anything is allocated
        assertOneLineErrorOnly(2, "floats in its attention pattern [batch, n_heads, n_ctx, n_ctx]", "bench",
                "train", "--n-ctx", "20000");
        assertOneLineErrorOnly(2, "Invalid value for option '--n-heads'", "bench", "train", "--n-heads", "two");
    }
}

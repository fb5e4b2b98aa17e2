package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.io.Checkpoints;
import dev.trilens.model.ModelConfig;
import dev.trilens.train.TrainConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `train`'s shape flags: the model it writes has the shape asked for, and a resumed run keeps its shape. */
class TrainShapeTest extends CliTestBase {

    @Test
    void trainsTheShapeTheFlagsDescribe(@TempDir Path dir) {
        Path out = dir.resolve("run");
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--threads", "1", "--d-model", "24",
                "--n-layers", "2", "--n-heads", "3", "--d-head", "8", "--d-mlp", "12", "--d-vocab", "30", "--n-ctx",
                "16", "--layernorm", "--batch", "64", "--out", out.toString())).isZero();
        ModelConfig saved = Checkpoints.load(out.resolve("model.safetensors")).weights().cfg;
        assertThat(saved).isEqualTo(new ModelConfig(30, 16, 24, 2, 3, 8, 12, true));
        // 30 tokens: int(0.05 * 30 * 29) = 43 trigrams, scored each epoch
        assertThat(out()).contains("trigrams").contains("/43 correct");

        assertOneLineError(1, "cannot resume " + out + " with a different config: it has d_model 24 (flags ask 32)",
                "train", "--resume", "--out", out.toString(), "--preset", "quick", "--epochs", "1", "--d-head", "8",
                "--n-layers", "2", "--n-heads", "3", "--d-mlp", "12", "--d-vocab", "30", "--n-ctx", "16",
                "--layernorm", "--batch", "64");
    }

    @Test
    void aSweepAxisCanBeAnyShapeFlag() {
        TrainConfig c = TrainCommand.configOf(List.of("--preset", "quick", "--d-model", "48", "--n-heads", "2",
                "--batch", "32", "--attn-only"));
        assertThat(c.dModel()).isEqualTo(48);
        assertThat(c.nHeads()).isEqualTo(2);
        assertThat(c.batchSize()).isEqualTo(32);
        assertThat(c.dMlp()).isZero();
        // the rest stays the preset's
        assertThat(c.withModel(TrainConfig.quick().modelConfig()).withBatchSize(TrainConfig.quick().batchSize()))
                .isEqualTo(TrainConfig.quick());
        assertThat(TrainCommand.CONFIG_FLAGS).containsAll(ShapeOptions.FLAGS);
    }

    @Test
    void aBatchThatCannotFitIsRefusedBeforeTraining(@TempDir Path dir) {
        Path out = dir.resolve("run");
        assertOneLineErrorOnly(2, "floats in its logits [batch, n_ctx, d_vocab]", "train", "--preset", "quick",
                "--d-vocab", "100000", "--batch", "4096", "--out", out.toString());
        assertThat(out).doesNotExist();
    }
}

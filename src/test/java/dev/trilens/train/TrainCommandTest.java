package dev.trilens.train;

import dev.trilens.cli.CliTestBase;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.cli.Main;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.TorchCheckpoint;
import dev.trilens.model.Parallel;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The train and run commands as a user meets them, through Main.execute. */
class TrainCommandTest extends CliTestBase {

    @TempDir
    Path tmp;

    @Test
    void badFlagsGiveOneLineErrors() {
        String d = tmp.resolve("x").toString();
        assertOneLineError(2, "--epochs must be >= 1, got 0", "train", "--epochs", "0", "--out", d);
        assertOneLineError(2, "expected one of [arena, quick]", "train", "--preset", "big");
        assertOneLineError(2, "--threads must be >= 1, got 0", "train", "--threads", "0", "--out", d);
        assertOneLineError(2, "--d-head must be >= 1, got 0", "train", "--d-head", "0", "--out", d);
        assertOneLineError(2, "'x' is not an int", "train", "--d-mlp", "x");
        assertOneLineError(2, "--attn-only contradicts --d-mlp 5", "train", "--attn-only", "--d-mlp", "5");
        assertOneLineError(2, "--resume needs --out", "train", "--resume");
        assertOneLineError(1, "trilens: error: nothing to resume in " + d, "train", "--resume", "--out", d);
        assertOneLineError(2, "--threads must be >= 1, got -1", "run", "--threads", "-1");
    }

    @Test
    void quickEpochWritesItsFilesAndResumeChecksTheConfig() {
        Path dir = tmp.resolve("q");
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--out", dir.toString(), "--threads", "1"))
                .as(err()).isEqualTo(0);
        String printed = out();
        assertThat(printed).contains("training into " + dir).containsPattern("epoch 1/1  train_loss \\d\\.\\d{4}")
                .contains(dir.resolve("model.safetensors").toString());
        assertThat(dir.resolve(Trainer.MODEL)).isRegularFile();
        assertThat(dir.resolve(Trainer.BEST)).isRegularFile();
        assertThat(dir.resolve(Trainer.STATE)).isRegularFile();
        assertThat(dir.resolve(Trainer.METRICS)).content().hasLineCount(1);

        assertOneLineError(1, "cannot resume " + dir + " with a different config: it has train.epochs 1 (flags ask 2)",
                "train", "--resume", "--out", dir.toString(), "--epochs", "2");
        assertOneLineError(1, "already holds a training run", "train", "--preset", "quick", "--out", dir.toString());
        assertThat(dir.resolve(Trainer.MODEL_PT)).doesNotExist();
        // --export-pt on a finished run exports its committed weights
        assertThat(run("train", "--resume", "--out", dir.toString(), "--export-pt")).as(err()).isEqualTo(0);
        assertThat(out()).contains("all 1 epochs are already done")
                .contains("pytorch   " + dir.resolve(Trainer.MODEL_PT));
        assertThat(TorchCheckpoint.load(dir.resolve(Trainer.MODEL_PT)).data)
                .isEqualTo(Checkpoints.load(dir.resolve(Trainer.MODEL)).weights().data);
    }
}

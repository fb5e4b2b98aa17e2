package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** --quiet (any command, before or after its name) leaves out progress and keeps results and errors. */
class QuietTest extends CliTestBase {

    @Test
    void trainAndAnalyzePrintTheirResultsOnly(@TempDir Path dir) {
        Path run = dir.resolve("run");
        assertThat(run("train", "--preset", "quick", "--epochs", "2", "--threads", "1", "--quiet", "--out",
                run.toString())).isZero();
        assertThat(out()).doesNotContain("epoch 1/2").doesNotContain("training into")
                .startsWith("model     " + run.resolve("model.safetensors")).hasLineCount(3);
        assertThat(err()).isEmpty();

        // the same command without it shows each epoch: --quiet is what removed them
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--threads", "1", "--out",
                dir.resolve("loud").toString())).isZero();
        assertThat(out()).contains("epoch 1/1").contains("training into");

        assertThat(run("-q", "analyze", "--model", run.resolve("model.safetensors").toString(), "--out",
                run.toString())).isZero();
        assertThat(err()).doesNotContain("analyze: ");
        assertThat(out()).contains("model    " + run.resolve("model.safetensors"));
        assertThat(run.resolve("analysis.json")).isNotEmptyFile();
    }

    @Test
    void errorsStillShow() {
        assertOneLineError(2, "--epochs must be >= 1, got 0", "train", "--quiet", "--epochs", "0");
    }

    @Test
    void theNextCommandInTheSameJvmIsNotQuiet(@TempDir Path dir) {
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--threads", "1", "-q", "--out",
                dir.resolve("a").toString())).isZero();
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--threads", "1", "--out",
                dir.resolve("b").toString())).isZero();
        assertThat(out()).contains("epoch 1/1");
    }
}

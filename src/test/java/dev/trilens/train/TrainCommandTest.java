package dev.trilens.train;

import dev.trilens.cli.CliTestBase;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.cli.Main;
import dev.trilens.cli.TrainCommand;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.TorchCheckpoint;
import dev.trilens.model.Parallel;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The train and run commands as a user meets them, through Main.execute. */
class TrainCommandTest extends CliTestBase {

    @TempDir
    Path tmp;

    @Test
    void badFlagsGiveOneLineErrors() {
        String d = tmp.resolve("x").toString();
        assertOneLineError(2, "--epochs must be >= 1, got 0", "train", "--epochs", "0", "--out", d);
        assertOneLineError(2, "expected one of [arena, fast, quick]", "train", "--preset", "big");
        assertOneLineError(2, "--threads must be >= 1, got 0", "train", "--threads", "0", "--out", d);
        assertOneLineError(2, "--d-head must be >= 1, got 0", "train", "--d-head", "0", "--out", d);
        assertOneLineError(2, "'x' is not an int", "train", "--d-mlp", "x");
        assertOneLineError(2, "--attn-only contradicts --d-mlp 5", "train", "--attn-only", "--d-mlp", "5");
        assertOneLineError(2, "--resume needs --out", "train", "--resume");
        assertOneLineError(1, "trilens: error: nothing to resume in " + d, "train", "--resume", "--out", d);
        assertOneLineError(2, "--threads must be >= 1, got -1", "run", "--threads", "-1");
        assertOneLineError(2, "--trigram-prob must be > 0 and < 1, got 1.0", "train", "--trigram-prob", "1");
        assertOneLineError(2, "--trigram-prob must be > 0 and < 1, got NaN", "train", "--trigram-prob", "NaN");
        assertOneLineError(2, "'x' is not a long", "train", "--init-seed", "x");
        assertThat(tmp.resolve("x")).as("nothing is created before the flags are checked").doesNotExist();
    }

    @Test
    void seedSetsBothSeedsAndDataSeedInitSeedAndTrigramProbSetOne() {
        Path dir = tmp.resolve("s");
        assertThat(run("train", "--preset", "quick", "--epochs", "1", "--seed", "7", "--init-seed", "3",
                "--trigram-prob", "0.1", "--out", dir.toString(), "--threads", "1")).as(err()).isEqualTo(0);
        TrainConfig saved = TrainConfig.fromMetadata(Checkpoints.load(dir.resolve(Trainer.MODEL)).metadata(), "m");
        assertThat(saved).isEqualTo(TrainConfig.quick().withEpochs(1).withDataSeed(7).withInitSeed(3)
                .withTrigramProb(0.1));
        assertThat(out()).contains("trigram_prob=0.1 seed=7").contains("init_seed=3");
        // the resumed run keeps them: asking for another data seed is refused, the same ones are accepted
        assertOneLineError(1, "it has data.seed 7 (flags ask 8)", "train", "--resume", "--out", dir.toString(),
                "--data-seed", "8");
        assertThat(run("train", "--resume", "--out", dir.toString(), "--preset", "quick", "--epochs", "1",
                "--data-seed", "7", "--init-seed", "3", "--trigram-prob", "0.1")).as(err()).isEqualTo(0);
        assertThat(out()).contains("all 1 epochs are already done");
    }

    @Test
    void configOfParsesTrainsConfigFlagsOnly() {
        assertThat(TrainCommand.configOf(List.of("--preset", "quick", "--d-mlp", "0", "--data-seed", "41")))
                .isEqualTo(TrainConfig.quick().withDMlp(0).withDataSeed(41));
        assertThat(TrainCommand.configOf(List.of())).isEqualTo(TrainConfig.arena());
        assertThat(TrainCommand.configOf(List.of("--seed", "5", "--init-seed", "6")))
                .isEqualTo(TrainConfig.arena().withDataSeed(5).withInitSeed(6));
        assertThatThrownBy(() -> TrainCommand.configOf(List.of("--d-head", "0")))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessage("--d-head must be >= 1, got 0");
        assertThatThrownBy(() -> TrainCommand.configOf(List.of("--threads", "2")))
                .isInstanceOf(CommandLine.ParameterException.class)
                .hasMessageStartingWith("--threads does not decide a run's config; expected only --preset, ");
        // every flag of train is either a config flag or one of those that say where and how
        List<String> all = new CommandLine(new TrainCommand()).getCommandSpec().options().stream()
                .map(CommandLine.Model.OptionSpec::longestName).toList();
        assertThat(all).containsAll(TrainCommand.CONFIG_FLAGS);
        assertThat(all.stream().filter(f -> !TrainCommand.CONFIG_FLAGS.contains(f)).toList())
                .containsExactlyInAnyOrder("--out", "--threads", "--export-pt", "--snapshot-every", "--resume", "--help",
                        "--version");
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

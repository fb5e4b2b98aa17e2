package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import dev.trilens.model.ParamLayout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainStateTest {
    private static final String EXPECTED =
            "; expected the train_state file trilens train writes (start a fresh run with another --out)";

    @TempDir
    Path dir;

    /** TINY's state after epochsDone epochs, with weights and moments that differ in every element. */
    private static TrainState state(int epochsDone, long step) {
        int n = (int) ParamLayout.count(TrainerTest.TINY.modelConfig());
        float[] params = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) {
            params[i] = i * 0.25f - 3;
            m[i] = -i * 1e-3f;
            v[i] = i * 1e-6f;
        }
        return new TrainState(TrainerTest.TINY, epochsDone, step, 0.625, 2, params, m, v);
    }

    @Test
    void roundTripsEveryFieldInAnAlignedSafetensorsFile() throws IOException {
        TrainState s = state(3, 24);
        Path p = dir.resolve("state.safetensors");
        s.write(p);
        TrainState back = TrainState.read(p);
        assertThat(back.config()).isEqualTo(s.config());
        assertThat(back.epochsDone()).isEqualTo(3);
        assertThat(back.adamStep()).isEqualTo(24);
        assertThat(back.bestAvgCorrectProb()).isEqualTo(0.625);
        assertThat(back.bestEpoch()).isEqualTo(2);
        assertThat(back.params()).isEqualTo(s.params());
        assertThat(back.adamM()).isEqualTo(s.adamM());
        assertThat(back.adamV()).isEqualTo(s.adamV());
        byte[] b = Files.readAllBytes(p);
        long n = ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertThat(n % 8).isZero();
        assertThat(n - new String(b, 8, (int) n, StandardCharsets.UTF_8).stripTrailing().length()).isBetween(0L, 7L);
    }

    @Test
    void theStateOfAFinishedRunIsUsable() {
        // --resume after the last epoch finds nothing left to do, not a broken file
        Path p = dir.resolve("done.safetensors");
        state(TrainerTest.TINY.epochs(), 32).write(p);
        assertThat(TrainState.read(p).epochsDone()).isEqualTo(TrainerTest.TINY.epochs());
        state(TrainerTest.TINY.epochs() + 1, 40).write(p);
        assertThatThrownBy(() -> TrainState.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("training state " + p + " is unusable: it records epoch 5 of 4, step 40" + EXPECTED);
    }

    @Test
    void filesThatAreNoStateSayWhatIsWrong() throws IOException {
        Path p = Files.write(dir.resolve("tiny.safetensors"), new byte[] {1, 2, 3});
        assertThatThrownBy(() -> TrainState.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("training state " + p + " is unusable: the file is 3 bytes long: expected at least 8 (the "
                        + "header length), then a JSON header and the tensor data" + EXPECTED);
        byte[] array = "[1]".getBytes(StandardCharsets.UTF_8);
        Path p2 = Files.write(dir.resolve("array.safetensors"), ByteBuffer.allocate(8 + array.length)
                .order(ByteOrder.LITTLE_ENDIAN).putLong(array.length).put(array).array());
        assertThatThrownBy(() -> TrainState.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("training state " + p2 + " is unusable: header is not a JSON object, expected");
    }
}

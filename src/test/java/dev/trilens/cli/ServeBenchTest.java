package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `bench serve` runs its load test end to end and checks every answer; no timing is asserted. */
class ServeBenchTest extends CliTestBase {

    @Test
    void loadTestChecksEveryAnswer(@TempDir Path dir) {
        Path file = dir.resolve("small.safetensors");
        Safetensors.write(Weights.init(new ModelConfig(12, 8, 16, 1, 1, 8, 8, false), 3), Map.of(), file);
        assertThat(run("bench", "serve", "--model", file.toString(), "--warmup", "5", "--iters", "20",
                "--clients", "3", "--seconds", "0.5")).as(err()).isZero();
        String[] lines = out().strip().split("\n");
        assertThat(lines[1]).startsWith("latency    1 client, 20 requests after 5 warm-up");
        assertThat(lines[2]).startsWith("load       3 clients for").contains(" 0 wrong");
        assertThat(lines[lines.length - 1]).matches("serve_predict_median_ms=\\d+\\.\\d{3} "
                + "serve_predict_p99_ms=\\d+\\.\\d{3} serve_load_rps=\\d+ serve_load_wrong=0");
        assertOneLineErrorOnly(2, "bench serve needs --clients 1..256 and --seconds in (0, 600], got 0 and 5.0",
                "bench", "serve", "--clients", "0");
    }
}

package dev.trilens;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The challenge's published model and PyTorch reference numbers live in ../shared (not ours to redistribute);
 * tests that need them skip, saying why, where they are absent.
 */
public final class Fixtures {
    private static JsonNode golden;

    private Fixtures() {
    }

    public static Path arenaDir() {
        String shared = System.getProperty("trilens.shared", "../shared");
        return Path.of(shared, "fixtures", "arena-nov24");
    }

    /** Path of trigram_model.pt; skips the calling test when the fixture is absent. */
    public static Path challengeModel() {
        Path p = arenaDir().resolve("trigram_model.pt");
        assumeTrue(Files.isRegularFile(p), "skipped: challenge model not found at " + p.toAbsolutePath());
        return p;
    }

    /** golden.json; skips the calling test when the fixture is absent. */
    public static synchronized JsonNode golden() {
        Path p = arenaDir().resolve("golden.json");
        assumeTrue(Files.isRegularFile(p), "skipped: golden.json not found at " + p.toAbsolutePath());
        if (golden == null) {
            try {
                golden = new ObjectMapper().readTree(p.toFile());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return golden;
    }

    /** A golden {"shape": [...], "data": [...]} tensor as a flat float array. */
    public static float[] tensor(JsonNode node) {
        JsonNode data = node.get("data");
        float[] out = new float[data.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) data.get(i).asDouble();
        }
        return out;
    }
}

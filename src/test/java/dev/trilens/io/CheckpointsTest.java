package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointsTest {

    @TempDir
    Path dir;

    @Test
    void dispatchesOnContentNotName() {
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 9);
        Path pt = dir.resolve("looks-like.safetensors");
        TorchCheckpoint.write(w, pt);
        Path st = dir.resolve("looks-like.pt");
        Safetensors.write(w, Map.of("k", "v"), st);

        Checkpoint fromPt = Checkpoints.load(pt);
        assertThat(fromPt.weights().data).isEqualTo(w.data);
        assertThat(fromPt.metadata()).isEmpty();
        Checkpoint fromSt = Checkpoints.load(st);
        assertThat(fromSt.weights().data).isEqualTo(w.data);
        assertThat(fromSt.metadata()).containsEntry("k", "v");
        assertThat(fromSt.weights().cfg).isEqualTo(fromPt.weights().cfg);
    }

    @Test
    void missingFilesAndFolders() {
        Path missing = dir.resolve("nope.pt");
        for (Path p : new Path[] {missing, dir}) {
            assertThatThrownBy(() -> Checkpoints.load(p)).isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith("model file not found: " + p);
            assertThatThrownBy(() -> TorchCheckpoint.load(p)).isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith("model file not found: " + p);
            assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith("model file not found: " + p);
        }
    }

    @Test
    void otherFilesAreNamedAsNeitherFormat() throws IOException {
        Path text = dir.resolve("README.md");
        Files.writeString(text, "# trilens\n\nnot a model at all, but long enough to have a header\n");
        assertThatThrownBy(() -> Checkpoints.load(text)).isInstanceOf(TrilensException.class)
                .hasMessage("model file " + text + " is neither a PyTorch checkpoint (zip) nor a safetensors file: "
                        + "expected one written by torch.save or by trilens");
    }

    @Test
    void legacyTorchSaveIsNamed() throws IOException {
        Path legacy = Files.write(dir.resolve("old.pt"), new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10, 0, 0, 0, 0});
        assertThatThrownBy(() -> Checkpoints.load(legacy)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("model file " + legacy + " is in the legacy (pre-1.6, not zip) torch.save");
    }

    /** A safetensors file of this header and no data. */
    private Path headerOnly(String name, String header, long declared) throws IOException {
        byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        return Files.write(dir.resolve(name), b.putLong(declared).put(h).array());
    }

    @Test
    void dispatchReadsTheWholeSignature() throws IOException {
        // the four bytes of a zip's local header and nothing more: a cut-off .pt, refused as a zip
        Path zip4 = Files.write(dir.resolve("cut.pt"), new byte[] {'P', 'K', 3, 4});
        assertThatThrownBy(() -> Checkpoints.load(zip4)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + zip4 + " is not a readable zip archive");
        // an empty zip starts with its end-of-directory record, PK 5 6
        Path emptyZip = PtFiles.zip(dir.resolve("empty.pt"), Map.of());
        assertThatThrownBy(() -> Checkpoints.load(emptyZip)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + emptyZip + " has no data.pkl");
        Path legacy4 = Files.write(dir.resolve("old4.pt"), new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10});
        assertThatThrownBy(() -> Checkpoints.load(legacy4)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("model file " + legacy4 + " is in the legacy (pre-1.6, not zip) torch.save");

        // the smallest safetensors header, {}, filling the file: a safetensors file without tensors
        Path smallest = headerOnly("smallest.safetensors", "{}", 2);
        assertThatThrownBy(() -> Checkpoints.load(smallest)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + smallest + " has no 'embed.W_E'");
        // a header of 264 bytes: all eight bytes of the length count, not only the low ones
        String meta = "{\"__metadata__\": {\"k\": \"";
        Path h264 = headerOnly("h264.safetensors", meta + "v".repeat(264 - meta.length() - 3) + "\"}}", 264);
        assertThat(Files.size(h264)).isEqualTo(8 + 264);
        assertThatThrownBy(() -> Checkpoints.load(h264)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + h264 + " has no 'embed.W_E'");
        // a header one byte longer than the file holds is neither format
        Path past = headerOnly("past.safetensors", "{}", 3);
        assertThatThrownBy(() -> Checkpoints.load(past)).isInstanceOf(TrilensException.class)
                .hasMessage("model file " + past + " is neither a PyTorch checkpoint (zip) nor a safetensors file: "
                        + "expected one written by torch.save or by trilens");
    }

    @Test
    void emptyFileIsNotAModel() throws IOException {
        Path empty = Files.write(dir.resolve("empty.pt"), new byte[0]);
        assertThatThrownBy(() -> Checkpoints.load(empty)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("is 0 bytes long");
    }

    @Test
    void refusesNonFiniteWeightsUnlessAllowed() throws IOException {
        Weights w = Weights.init(TorchCheckpointTest.LN_2L_2H, 5);
        int at = w.offset("blocks.1.attn.W_V") + 1 * 8 * 4 + 3 * 4 + 2; // head 1, row 3, column 2
        w.data[at] = Float.NaN;
        w.data[w.offset("unembed.b_U") + 10] = Float.NEGATIVE_INFINITY;
        Path st = dir.resolve("nan.safetensors");
        Safetensors.write(w, Map.of(), st);
        Map<String, PtFiles.T> tensors = PtFiles.tensorsOf(w);
        // TransformerLens's IGNORE buffer is -inf: buffers are not weights and are not checked
        tensors.put("blocks.0.attn.IGNORE", PtFiles.T.f32(new long[0], Float.NEGATIVE_INFINITY));
        Path pt = PtFiles.stateDict(dir.resolve("nan.pt"), tensors);
        for (Path p : new Path[] {st, pt}) {
            assertThatThrownBy(() -> Checkpoints.load(p)).isInstanceOf(TrilensException.class)
                    .hasMessage("model file " + p + ": parameter 'blocks.1.attn.W_V' holds NaN at index [1, 3, 2] "
                            + "(the first of 2 non-finite values): expected finite weights; pass --allow-non-finite "
                            + "to load it anyway");
            Weights back = Checkpoints.load(p, true).weights();
            assertThat(TorchCheckpointTest.bits(back.data)).isEqualTo(TorchCheckpointTest.bits(w.data));
        }

        Weights inf = Weights.init(TorchCheckpointTest.ATTN_ONLY, 5);
        inf.data[inf.data.length - 1] = Float.POSITIVE_INFINITY;
        Path infPt = dir.resolve("inf.pt");
        TorchCheckpoint.write(inf, infPt);
        assertThatThrownBy(() -> Checkpoints.load(infPt)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("model file " + infPt + ": parameter 'unembed.b_U' holds Infinity at index [12] "
                        + "(the only non-finite value)");
    }
}

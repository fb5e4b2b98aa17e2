package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void roundTripsBitForBitWithConfigAndMetadata() throws IOException {
        for (ModelConfig cfg : List.of(ModelConfig.arena(), TorchCheckpointTest.LN_2L_2H,
                TorchCheckpointTest.ATTN_ONLY)) {
            Weights w = Weights.init(cfg, 11);
            w.data[0] = -0f;
            w.data[1] = Float.intBitsToFloat(0x7fc01234);
            Path st = dir.resolve("m.safetensors");
            Safetensors.write(w, Map.of("trained_by", "trilens", "epochs", "3"), st);
            Checkpoint c = Safetensors.read(st);
            assertThat(c.weights().cfg).isEqualTo(cfg);
            assertThat(TorchCheckpointTest.bits(c.weights().data)).isEqualTo(TorchCheckpointTest.bits(w.data));
            assertThat(c.metadata()).containsEntry("trained_by", "trilens").containsEntry("epochs", "3")
                    .containsAllEntriesOf(Safetensors.configMetadata(cfg));
            assertThat(Checkpoints.load(st, true).weights().data).isEqualTo(c.weights().data);
            assertThatThrownBy(() -> Checkpoints.load(st)).isInstanceOf(TrilensException.class)
                    .hasMessage("model file " + st + ": parameter 'embed.W_E' holds NaN at index [0, 1] (the only "
                            + "non-finite value): expected finite weights; pass --allow-non-finite to load it anyway");
        }
    }

    @Test
    void writesAnAlignedStandardHeader() throws IOException {
        Weights w = Weights.init(TorchCheckpointTest.LN_2L_2H, 2);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        byte[] b = Files.readAllBytes(st);
        long n = ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertThat(n % 8).isZero();
        // padded with at most 7 spaces, to the next multiple of 8 and no further
        assertThat(n - new String(b, 8, (int) n, StandardCharsets.UTF_8).stripTrailing().length()).isBetween(0L, 7L);
        assertThat(b.length).isEqualTo(8 + n + 4L * w.data.length);
        JsonNode h = JSON.readTree(new String(b, 8, (int) n, StandardCharsets.UTF_8));
        assertThat(h.get("__metadata__").get("normalization").asText()).isEqualTo("LN");
        assertThat(h.get("__metadata__").get("d_mlp").asText()).isEqualTo("12");
        JsonNode wq = h.get("blocks.1.attn.W_Q");
        assertThat(wq.get("dtype").asText()).isEqualTo("F32");
        assertThat(wq.get("shape").toString()).isEqualTo("[2,8,4]");
        int off = w.offset("blocks.1.attn.W_Q");
        assertThat(wq.get("data_offsets").toString()).isEqualTo("[" + 4 * off + "," + 4 * (off + 64) + "]");
        assertThat(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getFloat((int) (8 + n + 4L * off)))
                .isEqualTo(w.data[off]);
    }

    @Test
    void infersTheConfigWhenMetadataHasNoneAndConvertsDtypes() throws IOException {
        ModelConfig cfg = TorchCheckpointTest.LN_2L_2H;
        Weights w = Weights.init(cfg, 4);
        for (int i = 0; i < w.data.length; i++) {
            w.data[i] = Math.round(w.data[i] * 64) / 64f; // exact in float16 and bfloat16
        }
        ObjectNode header = JSON.createObjectNode();
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        String[] dtypes = {"F32", "F64", "F16", "BF16"};
        int i = 0;
        for (ParamLayout.Param p : w.layout.params()) {
            String dtype = dtypes[i++ % dtypes.length];
            byte[] bytes = encode(dtype, w.copyOf(p.name()));
            ObjectNode t = header.putObject(p.name());
            t.put("dtype", dtype);
            Arrays.stream(p.shape()).forEach(t.putArray("shape")::add);
            t.putArray("data_offsets").add(data.size()).add(data.size() + bytes.length);
            data.write(bytes);
        }
        // a TransformerLens buffer, as save_file(model.state_dict()) would include it
        header.putObject("blocks.0.attn.mask").put("dtype", "BOOL").set("shape", JSON.readTree("[2, 2]"));
        ((ObjectNode) header.get("blocks.0.attn.mask")).putArray("data_offsets").add(data.size()).add(data.size() + 4);
        data.write(new byte[] {1, 0, 1, 1});
        Path st = file("inferred.safetensors", header.toString(), data.toByteArray());

        Checkpoint c = Safetensors.read(st);
        assertThat(c.weights().cfg).isEqualTo(cfg);
        assertThat(c.metadata()).isEmpty();
        assertThat(c.weights().data).isEqualTo(w.data);
    }

    @Test
    void sharesTheStateDictChecks() throws IOException {
        Weights w = Weights.init(ModelConfig.arena(), 1);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        JsonNode header = header(st);
        byte[] data = data(st);

        Path p = without("missing.safetensors", header, data, "blocks.0.attn.W_K");
        assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p + " has no 'blocks.0.attn.W_K' (expected shape [1, 32, 16])");

        ObjectNode lying = header.deepCopy();
        ((ObjectNode) lying.get("__metadata__")).put("d_vocab", "74");
        Path p2 = file("lying.safetensors", lying.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p2 + ": 'embed.W_E' has shape [75, 32], expected [74, 32]");

        ObjectNode badMeta = header.deepCopy();
        ((ObjectNode) badMeta.get("__metadata__")).put("n_heads", "two");
        Path p3 = file("badmeta.safetensors", badMeta.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p3)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + p3 + ": metadata 'n_heads' is 'two', expected an integer");
    }

    @Test
    void refusesMalformedFilesBeforeAllocating() throws IOException {
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 1);
        Path good = dir.resolve("good.safetensors");
        Safetensors.write(w, Map.of(), good);
        byte[] bytes = Files.readAllBytes(good);
        JsonNode header = header(good);
        byte[] data = data(good);
        String wE = "safetensors file %s: tensor 'embed.W_E' ";

        Path tiny = Files.write(dir.resolve("tiny.safetensors"), new byte[] {1, 2, 3});
        assertThatThrownBy(() -> Safetensors.read(tiny)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + tiny + " is 3 bytes long: expected at least 8");

        Path huge = Files.write(dir.resolve("huge.safetensors"), le(8L << 40, 0));
        assertThatThrownBy(() -> Safetensors.read(huge)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("declares a huge header of 8796093022208 bytes, expected at most 100000000");
        Path negative = Files.write(dir.resolve("neg.safetensors"), le(-1L, 0));
        assertThatThrownBy(() -> Safetensors.read(negative)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("declares a huge header of 18446744073709551615 bytes");

        Path cutHeader = Files.write(dir.resolve("cuthead.safetensors"), Arrays.copyOf(bytes, 40));
        long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertThatThrownBy(() -> Safetensors.read(cutHeader)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + cutHeader + " declares a header of " + n + " bytes but only 32 "
                        + "bytes follow the length: truncated, or not a safetensors file");

        Path cutData = Files.write(dir.resolve("cutdata.safetensors"), Arrays.copyOf(bytes, bytes.length - 1));
        assertThatThrownBy(() -> Safetensors.read(cutData)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + cutData + ": tensor 'unembed.b_U' has data_offsets")
                .hasMessageContaining("out of bounds");

        Path notJson = file("notjson.safetensors", "{\"a\": {\"dtype\": \"F32\", ", new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(notJson)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + notJson + ": header is not valid JSON");
        String empty = "{\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}";
        Path dup = file("dup.safetensors", "{\"x\": " + empty + ", \"x\": " + empty + "}", new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(dup)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + dup + ": header is not valid JSON (Duplicate field 'x'");
        Path array = file("array.safetensors", "[1, 2, 3]", new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(array)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + array + ": header is not a JSON object");

        ObjectNode beyond = header.deepCopy();
        offsets(beyond, "embed.W_E", data.length - 4, data.length - 4 + 13 * 6 * 4);
        Path p1 = file("beyond.safetensors", beyond.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p1)).isInstanceOf(TrilensException.class)
                .hasMessage(String.format(wE, p1) + "has data_offsets [" + (data.length - 4) + ", "
                        + (data.length - 4 + 312) + "] out of bounds: expected 0 <= begin <= end <= " + data.length
                        + " (the data size)");

        ObjectNode wrongSize = header.deepCopy();
        offsets(wrongSize, "embed.W_E", 0, 300);
        Path p2 = file("size.safetensors", wrongSize.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessage(String.format(wE, p2) + "has data_offsets [0, 300] spanning 300 bytes, expected 312 for "
                        + "shape [13, 6] of F32");

        ObjectNode overlap = header.deepCopy();
        offsets(overlap, "pos_embed.W_pos", 4, 4 + 5 * 6 * 4);
        Path p3 = file("overlap.safetensors", overlap.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p3)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + p3 + ": tensors 'embed.W_E' [0, 312) and 'pos_embed.W_pos' [4, 124)"
                        + " overlap, expected each tensor to have its own bytes");

        ObjectNode fp8 = header.deepCopy();
        ((ObjectNode) fp8.get("embed.W_E")).put("dtype", "F8_E4M3");
        Path p4 = file("fp8.safetensors", fp8.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p4)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(String.format(wE, p4) + "has dtype F8_E4M3, expected F32");

        ObjectNode badShape = header.deepCopy();
        ((ObjectNode) badShape.get("embed.W_E")).set("shape", JSON.readTree("[13, -6]"));
        Path p5 = file("badshape.safetensors", badShape.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p5)).isInstanceOf(TrilensException.class)
                .hasMessage(String.format(wE, p5) + "has shape [13,-6], expected non-negative integer dimensions");

        ObjectNode notTensor = header.deepCopy();
        notTensor.put("embed.W_E", 42);
        Path p6 = file("nottensor.safetensors", notTensor.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p6)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(String.format(wE, p6) + "is 42, expected {\"dtype\"");
    }

    @Test
    void refusesANegativeBeginAsOutOfBounds() throws IOException {
        // a hostile header whose first tensor claims the 4 bytes before the data section: its size matches its
        // shape and its end is in range, so only the begin >= 0 check stands between it and the header's bytes
        String header = "{\"embed.W_E\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}";
        Path p = file("negative.safetensors", header, new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + p + ": tensor 'embed.W_E' has data_offsets [-4, 0] out of bounds: "
                        + "expected 0 <= begin <= end <= 0 (the data size)");
        // the same within a whole model: W_E moved 4 bytes back, still its own size
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 1);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        ObjectNode back = header(st).deepCopy();
        offsets(back, "embed.W_E", -4, 13 * 6 * 4 - 4);
        Path p2 = file("back.safetensors", back.toString(), data(st));
        assertThatThrownBy(() -> Safetensors.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + p2 + ": tensor 'embed.W_E' has data_offsets [-4, 308] "
                        + "out of bounds: expected 0 <= begin");
    }

    @Test
    void readsTensorsLargerThanOneReadInPieces() throws IOException {
        // 1.2M float16 and 1.1M float32 values: more than the 2^20 elements read at a time
        int nx = 1_200_000, ny = 1_100_000;
        ByteBuffer data = ByteBuffer.allocate(2 * nx + 4 * ny).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < nx; i++) {
            data.putShort(toHalf(i % 1000));
        }
        for (int i = 0; i < ny; i++) {
            data.putFloat(i);
        }
        String header = "{\"x\": {\"dtype\": \"F16\", \"shape\": [" + nx + "], \"data_offsets\": [0, " + 2 * nx
                + "]}, \"y\": {\"dtype\": \"F32\", \"shape\": [" + ny + "], \"data_offsets\": [" + 2 * nx + ", "
                + (2 * nx + 4 * ny) + "]}}";
        Path p = file("big.safetensors", header, data.array());
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(p)) {
            Safetensors.Header h = Safetensors.readHeader(ch, "big");
            float[] x = new float[3 + nx];
            Safetensors.readFloats(ch, h, h.tensors().get("x"), x, 3);
            float[] y = new float[ny];
            Safetensors.readFloats(ch, h, h.tensors().get("y"), y, 0);
            float[] expectedX = new float[3 + nx], expectedY = new float[ny];
            for (int i = 0; i < nx; i++) {
                expectedX[3 + i] = i % 1000;
            }
            for (int i = 0; i < ny; i++) {
                expectedY[i] = i;
            }
            assertThat(Arrays.equals(x, expectedX)).as("x read at offset 3").isTrue();
            assertThat(Arrays.equals(y, expectedY)).as("y").isTrue();
        }
    }

    @Test
    void refusesHeaderLengthsThatCannotBeRight() throws IOException {
        Path empty = Files.write(dir.resolve("zero.safetensors"), le(0, 16));
        assertThatThrownBy(() -> Safetensors.read(empty)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + empty + ": header is not a JSON object");
        // exactly the largest header accepted, in a file far too short to hold it
        Path atCap = Files.write(dir.resolve("cap.safetensors"), le(Safetensors.MAX_HEADER_BYTES, 16));
        assertThatThrownBy(() -> Safetensors.read(atCap)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + atCap + " declares a header of 100000000 bytes but only 16 bytes "
                        + "follow the length: truncated, or not a safetensors file");
        Path oneShort = file("short.safetensors", "{}", new byte[0]);
        byte[] b = Files.readAllBytes(oneShort);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(3);
        Files.write(oneShort, b);
        assertThatThrownBy(() -> Safetensors.read(oneShort)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + oneShort + " declares a header of 3 bytes but only 2 bytes follow "
                        + "the length: truncated, or not a safetensors file");
    }

    @Test
    void refusesMoreTensorsOrMetadataEntriesThanItsLimits() throws IOException {
        // one past each limit: the entry that would go over is refused, before the rest of the file is looked at
        StringBuilder tensors = new StringBuilder("{");
        for (int i = 0; i <= Safetensors.MAX_TENSORS; i++) {
            tensors.append(i == 0 ? "" : ", ").append("\"t").append(i)
                    .append("\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}");
        }
        Path manyTensors = file("tensors.safetensors", tensors.append('}').toString(), new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(manyTensors)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + manyTensors + ": header names more than 200000 tensors, expected "
                        + "a TransformerLens state dict");
        StringBuilder meta = new StringBuilder("{\"__metadata__\": {");
        for (int i = 0; i <= Safetensors.MAX_METADATA; i++) {
            meta.append(i == 0 ? "" : ", ").append("\"k").append(i).append("\": \"v\"");
        }
        Path manyEntries = file("meta.safetensors", meta.append("}}").toString(), new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(manyEntries)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + manyEntries + ": __metadata__ has more than 100000 entries, "
                        + "expected a few strings");
    }

    @Test
    void refusesTensorEntriesThatAreNotDtypeShapeAndOffsets() throws IOException {
        String t = "safetensors file %s: tensor 'x' ";
        String[][] cases = {
            {"{\"shape\": [1], \"data_offsets\": [0, 4]}", "lacks dtype, expected {\"dtype\": ..."},
            {"{\"dtype\": \"F32\", \"data_offsets\": [0, 4]}", "lacks shape, expected {\"dtype\": ..."},
            {"{\"dtype\": \"F32\", \"shape\": [1]}", "lacks data_offsets, expected {\"dtype\": ..."},
            {"{\"dtype\": {}, \"shape\": [1], \"data_offsets\": [0, 4]}", "has dtype an object, expected a string"},
            {"{\"dtype\": [1], \"shape\": [1], \"data_offsets\": [0, 4]}", "has dtype an array, expected a string"},
            {"{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": \"ab\"}",
                "has data_offsets \"ab\", expected an array of integers"},
            {"{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 4]}",
                "has data_offsets of more than 2 values"},
            {"{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 1.5]}",
                "has data_offsets [0,1.5], expected [begin, end]"},
            {"{\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}",
                "has shape [1.5], expected non-negative integer dimensions"},
            // numbers written as strings are no numbers, and are quoted back escaped
            {"{\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}",
                "has shape [\"1\"], expected non-negative integer dimensions"},
            {"{\"dtype\": \"F32\", \"shape\": [\"\\u001b[2J\"], \"data_offsets\": [0, 4]}",
                "has shape [\"\\x1b[2J\"], expected non-negative integer dimensions"},
            {"{\"dtype\": \"F32\", \"shape\": [2147483648], \"data_offsets\": [0, 4]}",
                "has shape [2147483648], expected non-negative integer dimensions"},
            // the largest dimension an array can index is accepted, and then needs its 8 GB
            {"{\"dtype\": \"F32\", \"shape\": [2147483647], \"data_offsets\": [0, 4]}",
                "has data_offsets [0, 4] spanning 4 bytes, expected 8589934588 for shape [2147483647] of F32"},
            {"{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 8]}",
                "has data_offsets [4, 8] spanning 4 bytes, expected 8 for shape [2] of F32"},
        };
        for (String[] c : cases) {
            Path p = file("entry.safetensors", "{\"x\": " + c[0] + "}", new byte[8]);
            assertThatThrownBy(() -> Safetensors.read(p)).as(c[0]).isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith(String.format(t, p) + c[1]);
        }
        Path meta = file("meta.safetensors", "{\"__metadata__\": {\"k\": 5}}", new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(meta)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + meta + ": __metadata__ 'k' is 5, expected a string");
        Path nullMeta = file("nullmeta.safetensors", "{\"__metadata__\": null}", new byte[0]);
        assertThatThrownBy(() -> Safetensors.read(nullMeta)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + nullMeta + ": __metadata__ is null, expected a JSON object of "
                        + "string keys and values");
    }

    @Test
    void anAttentionOnlyModelMayStateItsMlpWidthAsNone() throws IOException {
        // TransformerLens's config has d_mlp None for attention-only models
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 4);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        ObjectNode none = header(st).deepCopy();
        ((ObjectNode) none.get("__metadata__")).put("d_mlp", "None");
        Checkpoint c = Safetensors.read(file("none.safetensors", none.toString(), data(st)));
        assertThat(c.weights().cfg).isEqualTo(TorchCheckpointTest.ATTN_ONLY);
        assertThat(c.weights().data).isEqualTo(w.data);
    }

    @Test
    void refusesSizesItsMetadataDeclaresButItsTensorsDoNotHold() throws IOException {
        Weights w = Weights.init(ModelConfig.arena(), 1);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        JsonNode header = header(st);
        byte[] data = data(st);

        ObjectNode layers = header.deepCopy();
        ((ObjectNode) layers.get("__metadata__")).put("n_layers", "2000000000");
        Path p = file("layers.safetensors", layers.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p + ": its config says n_layers=2000000000, but it holds tensors for 1 "
                        + "layer(s): expected a config that describes the tensors present");

        ObjectNode vocab = header.deepCopy();
        ((ObjectNode) vocab.get("__metadata__")).put("d_vocab", "2000000000");
        Path p2 = file("vocab.safetensors", vocab.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p2 + ": a model with d_vocab=2000000000 ")
                .hasMessageEndingWith("parameters, expected at most 2147483639");

        ObjectNode width = header.deepCopy();
        ((ObjectNode) width.get("__metadata__")).put("d_mlp", "40");
        Path p3 = file("width.safetensors", width.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p3)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p3 + ": 'blocks.0.mlp.W_in' has shape [32, 20], expected [32, 40]");
    }

    @Test
    void refusesGapsInTheDataSection() throws IOException {
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 1);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        JsonNode header = header(st);
        byte[] data = data(st);
        int wE = 13 * 6 * 4;

        // every tensor after embed.W_E moved 4 bytes on, leaving 4 unused bytes in between
        ObjectNode moved = header.deepCopy();
        for (var it = moved.fields(); it.hasNext(); ) {
            var e = it.next();
            JsonNode off = e.getValue().get("data_offsets");
            if (off != null && off.get(0).asLong() >= wE) {
                offsets(moved, e.getKey(), off.get(0).asLong() + 4, off.get(1).asLong() + 4);
            }
        }
        byte[] gapped = new byte[data.length + 4];
        System.arraycopy(data, 0, gapped, 0, wE);
        System.arraycopy(data, wE, gapped, wE + 4, data.length - wE);
        Path p = file("gap.safetensors", moved.toString(), gapped);
        assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + p + ": no tensor holds bytes [" + wE + ", " + (wE + 4) + ") of the "
                        + "data section, after 'embed.W_E': expected the tensors' data to be contiguous, as the "
                        + "format requires");

        Path trailing = file("trailing.safetensors", header.toString(), Arrays.copyOf(data, data.length + 8));
        assertThatThrownBy(() -> Safetensors.read(trailing)).isInstanceOf(TrilensException.class)
                .hasMessage("safetensors file " + trailing + ": the data section has 8 bytes after its last tensor: "
                        + "expected the tensors' data to fill it, as the format requires");
    }

    @Test
    void escapesFileTextInMessages() throws IOException {
        Weights w = Weights.init(TorchCheckpointTest.ATTN_ONLY, 1);
        Path st = dir.resolve("m.safetensors");
        Safetensors.write(w, Map.of(), st);
        byte[] data = data(st);

        ObjectNode dtype = header(st).deepCopy();
        ((ObjectNode) dtype.get("embed.W_E")).put("dtype", "F32\u001b[2J\u009b31m");
        Path p = file("dtype.safetensors", dtype.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + p + ": tensor 'embed.W_E' has dtype "
                        + "F32\\x1b[2J\\x9b31m, expected F32");

        ObjectNode name = header(st).deepCopy();
        ObjectNode extra = name.putObject("blocks.0.\n\u001b]0;pwned\u0007");
        extra.put("dtype", "F32");
        extra.putArray("shape").add(0);
        extra.putArray("data_offsets").add(0).add(0);
        Path p2 = file("name.safetensors", name.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p2)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p2 + ": unexpected key 'blocks.0.\\x0a\\x1b]0;pwned\\x07', "
                        + "not a parameter");
        ObjectNode meta = header(st).deepCopy();
        ((ObjectNode) meta.get("__metadata__")).put("n_heads", "3\u001b[31m" + "x".repeat(500));
        Path p3 = file("meta.safetensors", meta.toString(), data);
        assertThatThrownBy(() -> Safetensors.read(p3)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("safetensors file " + p3 + ": metadata 'n_heads' is '3\\x1b[31mxxx")
                .hasMessageEndingWith("... (506 characters)', expected an integer");
    }

    static byte[] encode(String dtype, float[] v) {
        int size = TorchCheckpoint.elementSize(Map.of("F32", "float32", "F64", "float64").getOrDefault(dtype, "float16"));
        ByteBuffer b = ByteBuffer.allocate(size * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            switch (dtype) {
                case "F32" -> b.putFloat(x);
                case "F64" -> b.putDouble(x);
                case "BF16" -> b.putShort((short) (Float.floatToIntBits(x) >>> 16));
                default -> b.putShort(toHalf(x));
            }
        }
        return b.array();
    }

    /** float32 to binary16 for values that are exact in it (normal range only). */
    static short toHalf(float x) {
        int bits = Float.floatToIntBits(x);
        int sign = (bits >>> 16) & 0x8000;
        if ((bits & 0x7fffffff) == 0) {
            return (short) sign;
        }
        int exp = ((bits >>> 23) & 0xff) - 127 + 15;
        return (short) (sign | (exp << 10) | ((bits >>> 13) & 0x3ff));
    }

    private static byte[] le(long n, int extra) {
        return ByteBuffer.allocate(8 + extra).order(ByteOrder.LITTLE_ENDIAN).putLong(n).array();
    }

    private Path file(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(le(h.length, 0));
        out.write(h);
        out.write(data);
        return Files.write(dir.resolve(name), out.toByteArray());
    }

    /** The file with one tensor left out, the others' data moved up so that it stays contiguous. */
    private Path without(String name, JsonNode header, byte[] data, String drop) throws IOException {
        ObjectNode h = header.deepCopy();
        h.remove(drop);
        ByteArrayOutputStream kept = new ByteArrayOutputStream();
        for (var it = h.fields(); it.hasNext(); ) {
            var e = it.next();
            if (!e.getKey().equals("__metadata__")) {
                JsonNode off = e.getValue().get("data_offsets");
                int begin = off.get(0).asInt();
                int end = off.get(1).asInt();
                offsets(h, e.getKey(), kept.size(), kept.size() + end - begin);
                kept.write(data, begin, end - begin);
            }
        }
        return file(name, h.toString(), kept.toByteArray());
    }

    private static JsonNode header(Path st) throws IOException {
        byte[] b = Files.readAllBytes(st);
        long n = ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return JSON.readTree(new String(b, 8, (int) n, StandardCharsets.UTF_8));
    }

    private static byte[] data(Path st) throws IOException {
        byte[] b = Files.readAllBytes(st);
        long n = ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return Arrays.copyOfRange(b, (int) (8 + n), b.length);
    }

    private static void offsets(ObjectNode header, String name, long begin, long end) {
        ((ObjectNode) header.get(name)).putArray("data_offsets").add(begin).add(end);
    }
}

package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.Fixtures;
import dev.trilens.TrilensException;
import dev.trilens.io.PtFiles.T;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.Deflater;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TorchCheckpointTest {

    static final ModelConfig LN_2L_2H = new ModelConfig(11, 7, 8, 2, 2, 4, 12, true);
    static final ModelConfig ATTN_ONLY = new ModelConfig(13, 5, 6, 2, 3, 2, 0, false);

    @TempDir
    Path dir;

    @Test
    void readsTheChallengeModel() {
        Path pt = Fixtures.challengeModel();
        Weights w = TorchCheckpoint.load(pt);
        assertThat(w.cfg).isEqualTo(ModelConfig.arena());
        float[] wE = w.copyOf("embed.W_E");
        assertThat(wE).hasSize(75 * 32).isNotEqualTo(new float[75 * 32]);
        for (float v : w.data) {
            assertThat(Float.isFinite(v)).isTrue();
        }
        // values checked once against torch.load (float32, exact)
        assertThat(wE[0]).isEqualTo(-0.5178828f);
        assertThat(w.copyOf("unembed.W_U")[32 * 75 - 1]).isEqualTo(0.30961257f);
        assertThat(w.copyOf("blocks.0.attn.b_Q")[0]).isEqualTo(-1.0213821f);

        Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(pt);
        assertThat(sd).hasSize(18).containsKeys("blocks.0.attn.mask", "blocks.0.attn.IGNORE");
        assertThat(sd.keySet()).startsWith("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q");
        TorchCheckpoint.Tensor mask = sd.get("blocks.0.attn.mask");
        assertThat(mask.dtype()).isEqualTo("bool");
        assertThat(mask.shape()).containsExactly(50, 50);
        assertThat(mask.values()[1]).isZero(); // causal: query 0 does not see key 1
        assertThat(mask.values()[50]).isEqualTo(1f);
        assertThat(sd.get("blocks.0.attn.IGNORE").shape()).isEmpty();
        assertThat(sd.get("blocks.0.attn.IGNORE").values()).hasSize(1);

        Checkpoint c = Checkpoints.load(pt);
        assertThat(c.metadata()).isEmpty();
        assertThat(c.weights().data).isEqualTo(w.data);
    }

    @Test
    void roundTripsBitForBit() throws IOException {
        for (ModelConfig cfg : List.of(ModelConfig.arena(), LN_2L_2H, ATTN_ONLY)) {
            Weights w = Weights.init(cfg, 7);
            w.data[0] = -0f;
            w.data[1] = Float.intBitsToFloat(0x7fc01234); // a NaN with a payload
            w.data[2] = Float.MIN_VALUE;
            Path pt = dir.resolve("m.pt");
            TorchCheckpoint.write(w, pt);
            Weights back = TorchCheckpoint.load(pt);
            assertThat(back.cfg).isEqualTo(cfg);
            assertThat(bits(back.data)).isEqualTo(bits(w.data));
            byte[] first = Files.readAllBytes(pt);
            TorchCheckpoint.write(w, pt);
            assertThat(Files.readAllBytes(pt)).as("same weights, same file").isEqualTo(first);
        }
    }

    @Test
    void writesTheLayoutTorchExpects() throws IOException {
        Path pt = dir.resolve("my model.pt");
        TorchCheckpoint.write(Weights.init(ATTN_ONLY, 1), pt);
        try (ZipFile zip = new ZipFile(pt.toFile())) {
            List<String> names = zip.stream().map(ZipEntry::getName).toList();
            assertThat(names).startsWith("my_model/data.pkl", "my_model/byteorder", "my_model/data/0")
                    .endsWith("my_model/version");
            assertThat(zip.stream().allMatch(e -> e.getMethod() == ZipEntry.STORED)).isTrue();
            assertThat(new String(zip.getInputStream(zip.getEntry("my_model/byteorder")).readAllBytes(),
                    StandardCharsets.US_ASCII)).isEqualTo("little");
            byte[] pkl = zip.getInputStream(zip.getEntry("my_model/data.pkl")).readAllBytes();
            assertThat(pkl[0] & 0xff).isEqualTo(0x80);
            assertThat(pkl[1]).isEqualTo((byte) 2);
        }
        assertThat(Files.list(dir)).containsExactly(pt);
    }

    /**
     * Written by torch 1.13 (torch.save, no byteorder entry, plain dict): float64 views of one shared storage (a
     * transpose, and a slice with a storage offset), float16, bfloat16, int64, bool and a stride-0 expand.
     */
    private static final String TORCH_MIXED = """
            UEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAOABQAbWl4ZWQvZGF0YS5wa2xGQhAAWlpaWlpaWlpaWlpaWlpaWoACfXEAKFgBAAAA
            dHEBY3RvcmNoLl91dGlscwpfcmVidWlsZF90ZW5zb3JfdjIKcQIoKFgHAAAAc3RvcmFnZXEDY3RvcmNoCkRvdWJsZVN0b3JhZ2UK
            cQRYAQAAADBxBVgDAAAAY3B1cQZLDHRxB1FLAEsESwOGcQhLAUsEhnEJiWNjb2xsZWN0aW9ucwpPcmRlcmVkRGljdApxCilScQt0
            cQxScQ1YAQAAAHZxDmgCKChoA2gEaAVoBksMdHEPUUsFSwJLAoZxEEsESwGGcRGJaAopUnESdHETUnEUWAEAAABocRVoAigoaANj
            dG9yY2gKSGFsZlN0b3JhZ2UKcRZYAQAAADFxF2gGSwR0cRhRSwBLBIVxGUsBhXEaiWgKKVJxG3RxHFJxHVgBAAAAYnEeaAIoKGgD
            Y3RvcmNoCkJGbG9hdDE2U3RvcmFnZQpxH1gBAAAAMnEgaAZLAnRxIVFLAEsChXEiSwGFcSOJaAopUnEkdHElUnEmWAEAAABpcSdo
            AigoaANjdG9yY2gKTG9uZ1N0b3JhZ2UKcShYAQAAADNxKWgGSwR0cSpRSwBLAksChnErSwJLAYZxLIloCilScS10cS5ScS9YAQAA
            AG1xMGgCKChoA2N0b3JjaApCb29sU3RvcmFnZQpxMVgBAAAANHEyaAZLA3RxM1FLAEsDhXE0SwGFcTWJaAopUnE2dHE3UnE4WAEA
            AABlcTloAigoaANjdG9yY2gKRmxvYXRTdG9yYWdlCnE6WAEAAAA1cTtoBksDdHE8UUsASwJLA4ZxPUsASwGGcT6JaAopUnE/dHFA
            UnFBdS5QSwcIYorBm2gCAABoAgAAUEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAMAB4AbWl4ZWQvZGF0YS8wRkIaAFpaWlpaWlpa
            WlpaWlpaWlpaWlpaWlpaWlpaAAAAAAAAAAAAAAAAAADwPwAAAAAAAABAAAAAAAAACEAAAAAAAAAQQAAAAAAAABRAAAAAAAAAGEAA
            AAAAAAAcQAAAAAAAACBAAAAAAAAAIkAAAAAAAAAkQAAAAAAAACZAUEsHCPAHmfhgAAAAYAAAAFBLAwQAAAgIAAAAAAAAAAAAAAAA
            AAAAAAAADAAmAG1peGVkL2RhdGEvMUZCIgBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaAD6AwP97AQBQSwcIZE1h
            9QgAAAAIAAAAUEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAAMAD4AbWl4ZWQvZGF0YS8yRkI6AFpaWlpaWlpaWlpaWlpaWlpaWlpa
            WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlrAP0DAUEsHCAIeIxMEAAAABAAAAFBLAwQAAAgIAAAAAAAAAAAA
            AAAAAAAAAAAADABCAG1peGVkL2RhdGEvM0ZCPgBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa
            WlpaWlpaWlpaWlpaWlpaWgEAAAAAAAAA/v////////8DAAAAAAAAAAQAAAAAAAAAUEsHCIXeY2ggAAAAIAAAAFBLAwQAAAgIAAAA
            AAAAAAAAAAAAAAAAAAAADAAmAG1peGVkL2RhdGEvNEZCIgBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaAQABUEsH
            CLODhIkDAAAAAwAAAFBLAwQAAAgIAAAAAAAAAAAAAAAAAAAAAAAADABDAG1peGVkL2RhdGEvNUZCPwBaWlpaWlpaWlpaWlpaWlpa
            WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWloAAIA/AAAAQAAAQEBQSwcIsZYOsgwAAAAMAAAA
            UEsDBAAACAgAAAAAAAAAAAAAAAAAAAAAAAANADkAbWl4ZWQvdmVyc2lvbkZCNQBaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa
            WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWjMKUEsHCNGeZ1UCAAAAAgAAAFBLAQIAAAAACAgAAAAAAABiisGbaAIAAGgCAAAOAAAA
            AAAAAAAAAAAAAAAAAABtaXhlZC9kYXRhLnBrbFBLAQIAAAAACAgAAAAAAADwB5n4YAAAAGAAAAAMAAAAAAAAAAAAAAAAALgCAABt
            aXhlZC9kYXRhLzBQSwECAAAAAAgIAAAAAAAAZE1h9QgAAAAIAAAADAAAAAAAAAAAAAAAAABwAwAAbWl4ZWQvZGF0YS8xUEsBAgAA
            AAAICAAAAAAAAAIeIxMEAAAABAAAAAwAAAAAAAAAAAAAAAAA2AMAAG1peGVkL2RhdGEvMlBLAQIAAAAACAgAAAAAAACF3mNoIAAA
            ACAAAAAMAAAAAAAAAAAAAAAAAFQEAABtaXhlZC9kYXRhLzNQSwECAAAAAAgIAAAAAAAAs4OEiQMAAAADAAAADAAAAAAAAAAAAAAA
            AADwBAAAbWl4ZWQvZGF0YS80UEsBAgAAAAAICAAAAAAAALGWDrIMAAAADAAAAAwAAAAAAAAAAAAAAAAAUwUAAG1peGVkL2RhdGEv
            NVBLAQIAAAAACAgAAAAAAADRnmdVAgAAAAIAAAANAAAAAAAAAAAAAAAAANwFAABtaXhlZC92ZXJzaW9uUEsGBiwAAAAAAAAAHgMt
            AAAAAAAAAAAACAAAAAAAAAAIAAAAAAAAANMBAAAAAAAAUgYAAAAAAABQSwYHAAAAACUIAAAAAAAAAQAAAFBLBQYAAAAACAAIANMB
            AABSBgAAAAA=
            """;

    @Test
    void readsStridesOffsetsAndDtypesAsTorchWritesThem() throws IOException {
        Path pt = Files.write(dir.resolve("mixed.pt"), Base64.getMimeDecoder().decode(TORCH_MIXED));
        Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(pt);
        assertThat(sd.keySet()).containsExactly("t", "v", "h", "b", "i", "m", "e");
        // base = arange(12).reshape(3, 4) as float64; t = base.t(); v = base[1:, 1:3]
        assertTensor(sd.get("t"), "float64", new int[] {4, 3}, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
        assertTensor(sd.get("v"), "float64", new int[] {2, 2}, 5, 6, 9, 10);
        assertTensor(sd.get("h"), "float16", new int[] {4}, 1.5f, -2.25f, 65504f, 0x1p-24f);
        assertTensor(sd.get("b"), "bfloat16", new int[] {2}, 1.5f, -3f);
        assertTensor(sd.get("i"), "int64", new int[] {2, 2}, 1, -2, 3, 4);
        assertTensor(sd.get("m"), "bool", new int[] {3}, 1, 0, 1);
        assertTensor(sd.get("e"), "float32", new int[] {2, 3}, 1, 2, 3, 1, 2, 3);
    }

    @Test
    void readsHandBuiltViewsOfSharedStorages() throws IOException {
        float[] storage = new float[12];
        for (int i = 0; i < storage.length; i++) {
            storage[i] = i;
        }
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark();
        // a transposed view: size (4, 3), stride (1, 4) of a contiguous 3x4
        pkl.string("transposed").tensorV2("FloatStorage", "0", "cpu", 12, 0, new long[] {4, 3}, new long[] {1, 4});
        // a 2x2 window starting at element 5 of the same storage
        pkl.string("window").tensorV2("FloatStorage", "0", "cpu", 12, 5, new long[] {2, 2}, new long[] {4, 1});
        pkl.string("scalar").tensorV2("DoubleStorage", "1", "cuda:0", 3, 2, new long[0], new long[0]);
        pkl.string("empty").tensorV2("FloatStorage", "0", "cpu", 12, 0, new long[] {0, 3}, new long[] {3, 1});
        byte[] data = pkl.setitems().stop().toByteArray();

        for (ByteOrder order : List.of(ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN)) {
            Map<String, byte[]> entries = new LinkedHashMap<>();
            entries.put("top/data.pkl", data);
            entries.put("top/byteorder", order == ByteOrder.BIG_ENDIAN ? "big".getBytes() : "little".getBytes());
            entries.put("top/data/0", PtFiles.floats(order, storage));
            byte[] d = PtFiles.doubles(0.5, 1.5, -2.5);
            if (order == ByteOrder.BIG_ENDIAN) {
                java.nio.ByteBuffer.wrap(d).asDoubleBuffer().put(new double[] {0.5, 1.5, -2.5});
            }
            entries.put("top/data/1", d);
            Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(PtFiles.zip(dir.resolve(
                    "views-" + order + ".pt"), entries));
            assertTensor(sd.get("transposed"), "float32", new int[] {4, 3}, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
            assertTensor(sd.get("window"), "float32", new int[] {2, 2}, 5, 6, 9, 10);
            assertTensor(sd.get("scalar"), "float64", new int[0], -2.5f);
            assertTensor(sd.get("empty"), "float32", new int[] {0, 3});
        }
    }

    @Test
    void ignoresBuffersAndChecksEveryParameter() throws IOException {
        Weights w = Weights.init(ModelConfig.arena(), 3);
        Map<String, T> tensors = PtFiles.tensorsOf(w);
        tensors.put("blocks.0.attn.mask", new T("BoolStorage", new long[] {2, 2}, new byte[] {1, 0, 1, 1}));
        tensors.put("blocks.0.attn.IGNORE", T.f32(new long[0], Float.NEGATIVE_INFINITY));
        Weights back = TorchCheckpoint.load(PtFiles.stateDict(dir.resolve("ok.pt"), tensors));
        assertThat(back.data).isEqualTo(w.data);

        Map<String, T> missing = PtFiles.tensorsOf(w);
        missing.remove("blocks.0.attn.W_K");
        Path p1 = PtFiles.stateDict(dir.resolve("missing.pt"), missing);
        assertThatThrownBy(() -> TorchCheckpoint.load(p1)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p1 + " has no 'blocks.0.attn.W_K' (expected shape [1, 32, 16])");

        Map<String, T> misshapen = PtFiles.tensorsOf(w);
        misshapen.put("unembed.W_U", T.f32(new long[] {32, 74}, new float[32 * 74]));
        Path p2 = PtFiles.stateDict(dir.resolve("shape.pt"), misshapen);
        assertThatThrownBy(() -> TorchCheckpoint.load(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p2 + ": 'unembed.W_U' has shape [32, 74], expected [32, 75]");

        Map<String, T> extra = PtFiles.tensorsOf(w);
        extra.put("blocks.0.attn.W_X", T.f32(new long[] {1}, 1f));
        Path p3 = PtFiles.stateDict(dir.resolve("extra.pt"), extra);
        assertThatThrownBy(() -> TorchCheckpoint.load(p3)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p3 + ": unexpected key 'blocks.0.attn.W_X'");

        Map<String, T> noMlp = PtFiles.tensorsOf(w);
        noMlp.keySet().removeIf(k -> k.contains(".mlp."));
        assertThat(TorchCheckpoint.load(PtFiles.stateDict(dir.resolve("attn.pt"), noMlp)).cfg)
                .isEqualTo(ModelConfig.arena().withDMlp(0));

        Map<String, T> ints = PtFiles.tensorsOf(w);
        ints.put("unembed.b_U", new T("LongStorage", new long[] {75}, new byte[75 * 8]));
        Path p4 = PtFiles.stateDict(dir.resolve("ints.pt"), ints);
        assertThatThrownBy(() -> TorchCheckpoint.load(p4)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p4 + ": 'unembed.b_U' has dtype int64, expected a floating-point tensor");

        Map<String, T> notTl = new LinkedHashMap<>();
        notTl.put("fc.weight", T.f32(new long[] {2, 2}, 1, 2, 3, 4));
        Path p5 = PtFiles.stateDict(dir.resolve("other.pt"), notTl);
        assertThatThrownBy(() -> TorchCheckpoint.load(p5)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p5 + " has no 'embed.W_E'");
    }

    @Test
    void refusesTruncatedCorruptedAndForeignFiles() throws IOException {
        Path good = dir.resolve("good.pt");
        TorchCheckpoint.write(Weights.init(ATTN_ONLY, 5), good);
        byte[] bytes = Files.readAllBytes(good);

        for (int len : new int[] {0, 3, 100, bytes.length / 2, bytes.length - 30, bytes.length - 1}) {
            Path cut = Files.write(dir.resolve("cut.pt"), Arrays.copyOf(bytes, len));
            assertThatThrownBy(() -> TorchCheckpoint.readStateDict(cut)).isInstanceOf(TrilensException.class)
                    .hasMessageContaining(cut.toString()).hasMessageContaining("expected");
        }

        // a flipped byte anywhere: loads (e.g. a timestamp) or fails as a TrilensException, never as anything else
        int failures = 0;
        for (int i = 0; i < bytes.length; i += 5) {
            byte[] bad = bytes.clone();
            bad[i] ^= 0x5a;
            Path p = Files.write(dir.resolve("flip.pt"), bad);
            try {
                TorchCheckpoint.load(p);
            } catch (TrilensException e) {
                assertThat(e.getMessage()).contains(p.toString()).doesNotContain("\n");
                failures++;
            }
        }
        assertThat(failures).isGreaterThan(bytes.length / 10);

        Path text = Files.writeString(dir.resolve("notes.pt"), "not a checkpoint\n");
        assertThatThrownBy(() -> TorchCheckpoint.load(text)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + text + " is not a readable zip archive (zip END header not found): "
                        + "expected a PyTorch checkpoint written by torch.save, complete and uncorrupted");

        Path noPkl = PtFiles.zip(dir.resolve("nopkl.pt"), Map.of("x/data/0", new byte[4]));
        assertThatThrownBy(() -> TorchCheckpoint.load(noPkl)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + noPkl + " has no data.pkl: expected a zip written by torch.save");
    }

    @Test
    void detectsStorageDataThatIsCorruptedButStillAZip() throws IOException {
        Path good = dir.resolve("good.pt");
        TorchCheckpoint.write(Weights.init(ATTN_ONLY, 5), good);
        byte[] bytes = Files.readAllBytes(good);
        int at = indexOf(bytes, "good/data/0".getBytes()) + "good/data/0".length() + 3; // inside the stored floats
        bytes[at] ^= 1;
        Path bad = Files.write(dir.resolve("bad.pt"), bytes);
        assertThatThrownBy(() -> TorchCheckpoint.load(bad)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + bad + ": entry 'good/data/0' is corrupted (size or CRC does not match the "
                        + "zip directory): expected an intact torch.save file");
    }

    @Test
    void refusesStoragesShorterThanTheirViews() throws IOException {
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 10, 0, new long[] {4, 4}, new long[] {4, 1});
        Path p = PtFiles.zip(dir.resolve("short.pt"), Map.of("a/data.pkl", pkl.setitems().stop().toByteArray(),
                "a/data/0", new byte[40]));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p + ": tensor 'x' (size [4, 4], stride [4, 1], offset 0) needs 16 "
                        + "elements of storage '0', which holds only 10");

        PickleWriter pkl2 = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl2.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 10, 0, new long[] {10}, new long[] {1});
        Path p2 = PtFiles.zip(dir.resolve("short2.pt"), Map.of("a/data.pkl", pkl2.setitems().stop().toByteArray(),
                "a/data/0", new byte[32]));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p2 + ": 'a/data/0' holds 32 bytes, expected 10 float32 values (40 bytes)");

        // a view whose last element is the first one past its storage
        PickleWriter pkl4 = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl4.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 10, 1, new long[] {10}, new long[] {1});
        Path p4 = PtFiles.zip(dir.resolve("past.pt"), Map.of("a/data.pkl", pkl4.setitems().stop().toByteArray(),
                "a/data/0", new byte[40]));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p4)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p4 + ": tensor 'x' (size [10], stride [1], offset 1) needs 11 "
                        + "elements of storage '0', which holds only 10");

        Path p3 = PtFiles.zip(dir.resolve("nostorage.pt"), Map.of("a/data.pkl",
                pkl2.toByteArray()));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p3)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p3 + " has no entry 'a/data/0'");
    }

    @Test
    void refusesPicklesThatAreNotFlatStateDicts() throws IOException {
        byte[] tuple = new PickleWriter().proto(2).intTuple(1, 2).stop().toByteArray();
        Path p = PtFiles.zip(dir.resolve("tuple.pt"), Map.of("a/data.pkl", tuple));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("expected a state dict");

        byte[] nested = new PickleWriter().proto(2).emptyDict().string("model").emptyDict().setitem().stop()
                .toByteArray();
        Path p2 = PtFiles.zip(dir.resolve("nested.pt"), Map.of("a/data.pkl", nested));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p2 + ": entry 'model' is a dict, expected a tensor: save the model with "
                        + "torch.save(model.state_dict(), path)");

        byte[] forged = {(byte) 0x80, 2, 'X', (byte) 0xf0, (byte) 0xff, (byte) 0xff, 0x7f, 'a', '.'};
        Path p4 = PtFiles.zip(dir.resolve("forged.pt"), Map.of("a/data.pkl", forged));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p4)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p4 + ": data.pkl is not a valid state dict pickle (a value's length "
                        + "runs past the end of data.pkl)");

        byte[] garbage = {(byte) 0x80, 2, (byte) 0xff, 0x00};
        Path p3 = PtFiles.zip(dir.resolve("garbage.pt"), Map.of("a/data.pkl", garbage));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p3)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p3 + ": data.pkl is not a valid state dict pickle");
    }

    @Test
    void refusesMaliciousPicklesWithoutRunningThem() throws IOException {
        Path marker = dir.resolve("pwned");
        String shell = "touch " + marker;
        String python = "open(" + "'" + marker + "', 'w').write('x')";
        Map<String, byte[]> attacks = new LinkedHashMap<>();
        attacks.put("os.system", new PickleWriter().proto(2).global("os", "system").string(shell).op(0x85).reduce()
                .stop().toByteArray());
        attacks.put("posix.system", new PickleWriter().proto(2).global("posix", "system").string(shell).op(0x85)
                .reduce().stop().toByteArray());
        // protocol 4's STACK_GLOBAL takes module and name from the stack
        attacks.put("builtins.eval", new PickleWriter().proto(4).string("builtins").string("eval").op(0x93)
                .string(python).op(0x85).reduce().stop().toByteArray());
        attacks.put("subprocess.check_output", new PickleWriter().proto(2).global("subprocess", "check_output")
                .mark().string("touch").string(marker.toString()).op('l').op(0x85).reduce().stop().toByteArray());
        // INST names its class inline
        attacks.put("os.system ", new PickleWriter().proto(0).mark().string(shell).op('i')
                .bytes("os\nsystem\n".getBytes()).stop().toByteArray());
        // hidden after a genuine tensor, inside the state dict
        PickleWriter inDict = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        inDict.mark().string("embed.W_E").tensorV2("FloatStorage", "0", "cpu", 1, 0, new long[] {1}, new long[] {1});
        inDict.string("x").global("builtins", "exec").string("import os; os.system('" + shell + "')").op(0x85)
                .reduce().setitems().stop();
        attacks.put("builtins.exec", inDict.toByteArray());

        for (Map.Entry<String, byte[]> a : attacks.entrySet()) {
            Path pt = PtFiles.zip(dir.resolve("evil.pt"), Map.of("evil/data.pkl", a.getValue(),
                    "evil/data/0", new byte[4]));
            assertThatThrownBy(() -> TorchCheckpoint.load(pt)).isInstanceOf(TrilensException.class)
                    .hasMessage("refusing to load " + pt + ": pickle references global '" + a.getKey().trim()
                            + "', which is not a tensor state dict type");
            assertThatThrownBy(() -> Checkpoints.load(pt)).isInstanceOf(TrilensException.class)
                    .hasMessageStartingWith("refusing to load");
            assertThat(marker).doesNotExist();
        }
    }

    /** A .pt holding only this data.pkl, and the message its refusal must start with. */
    private Path pickleOnly(String name, byte[] pkl) throws IOException {
        return PtFiles.zip(dir.resolve(name), Map.of("a/data.pkl", pkl));
    }

    private void assertRefusedPickle(Path p, String why) {
        assertThatThrownBy(() -> Checkpoints.load(p)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p + ": data.pkl is not a valid state dict pickle (")
                .hasMessageContaining(why);
    }

    @Test
    void refusesDictKeysThatAreNotStringsBeforeHashingThem() throws IOException {
        // {[]: 1}
        byte[] listKey = new PickleWriter().proto(2).emptyDict().op(']').integer(1).setitem().stop().toByteArray();
        assertRefusedPickle(pickleOnly("listkey.pt", listKey),
                "a dict key is a list, expected a string (a state dict's keys are tensor names))");

        // l = []; l.append(l); {l: 1}: hashing l would recurse until the stack overflows
        byte[] selfRef = new PickleWriter().proto(2).emptyDict().op(']').op('q').op(0).op('h').op(0).op('a')
                .integer(1).setitem().stop().toByteArray();
        assertRefusedPickle(pickleOnly("selfref.pt", selfRef), "it puts a list inside itself");

        // l0 = []; l1 = [l0, l0]; ... l100 = [l99, l99]; {l100: 1}: 900 bytes whose hash takes 2^100 steps
        PickleWriter nested = new PickleWriter().proto(2).emptyDict().op(']').op('q').op(0).op('0');
        for (int i = 1; i <= 100; i++) {
            nested.mark().op('h').op(i - 1).op('h').op(i - 1).op('l').op('q').op(i).op('0');
        }
        byte[] deep = nested.op('h').op(100).integer(1).setitem().stop().toByteArray();
        assertThat(deep.length).isLessThan(1000);
        assertRefusedPickle(pickleOnly("nested.pt", deep), "it nests containers more than 32 deep");

        // the same, shallow enough to reach the dict: refused as a key, not hashed
        PickleWriter shallow = new PickleWriter().proto(2).emptyDict().op(']').op('q').op(0).op('0');
        for (int i = 1; i <= 20; i++) {
            shallow.mark().op('h').op(i - 1).op('h').op(i - 1).op('l').op('q').op(i).op('0');
        }
        assertRefusedPickle(pickleOnly("shallow.pt", shallow.op('h').op(20).integer(1).setitem().stop()
                        .toByteArray()),
                "a dict key is a list");

        // OrderedDict([([], 1)]) and a DICT opcode take the same path
        byte[] ordered = new PickleWriter().proto(2).global("collections", "OrderedDict").mark().op(']').integer(1)
                .op(0x86).op('l').op(0x85).reduce().stop().toByteArray();
        assertRefusedPickle(pickleOnly("ordered.pt", ordered), "a dict key is a list");
        byte[] dict = new PickleWriter().proto(2).mark().intTuple(1, 2).integer(1).op('d').stop().toByteArray();
        assertRefusedPickle(pickleOnly("dict.pt", dict), "a dict key is a tuple");

        byte[] set = new PickleWriter().proto(4).op(0x8f).stop().toByteArray();
        assertRefusedPickle(pickleOnly("set.pt", set), "it builds a set, which a state dict never holds");

        // a tuple of 10,000 nested tuples as a value: nothing hashes it, but it is no state dict either
        PickleWriter tuples = new PickleWriter().proto(2).emptyDict().string("x").emptyTuple();
        for (int i = 0; i < 10_000; i++) {
            tuples.op(0x85);
        }
        assertRefusedPickle(pickleOnly("tuples.pt", tuples.setitem().stop().toByteArray()), "more than 32 deep");

        // a list placed in a tuple, then grown through the memo: its depth would no longer be known
        byte[] grown = new PickleWriter().proto(2).op(']').op('q').op(0).op(0x85).op('h').op(0).integer(1).op('a')
                .stop().toByteArray();
        assertRefusedPickle(pickleOnly("grown.pt", grown), "it changes a list or dict after placing it inside");
        // the same with a dict grown by SETITEM
        byte[] grownDict = new PickleWriter().proto(2).emptyDict().op('q').op(0).op(0x85).op('h').op(0).string("k")
                .integer(1).setitem().stop().toByteArray();
        assertRefusedPickle(pickleOnly("grown-dict.pt", grownDict),
                "it changes a list or dict after placing it inside");
    }

    @Test
    void boundsTheUnpicklersWorkByTheSizeOfDataPkl() throws IOException {
        // one None memoized 100,000 times: a memo entry per byte
        PickleWriter memo = new PickleWriter().proto(4).none();
        for (int i = 0; i < 100_000; i++) {
            memo.op(0x94);
        }
        assertRefusedPickle(pickleOnly("memo.pt", memo.stop().toByteArray()), "it memoizes more than 29097 objects");

        // 100,000 Nones: an object per byte
        PickleWriter nones = new PickleWriter().proto(2);
        for (int i = 0; i < 100_000; i++) {
            nones.none();
        }
        assertRefusedPickle(pickleOnly("nones.pt", nones.stop().toByteArray()), "it builds more than 54097 objects");

        // a 100,000-digit LONG: BigInteger would parse it in quadratic time
        byte[] digits = new byte[100_000];
        Arrays.fill(digits, (byte) '9');
        byte[] huge = new PickleWriter().proto(0).op('L').bytes(digits).op('\n').stop().toByteArray();
        assertRefusedPickle(pickleOnly("long.pt", huge), "an integer of 100000 characters, expected at most 40");

        // what a real state dict's pickle needs stays far inside the bounds
        Weights w = Weights.init(LN_2L_2H, 3);
        Path pt = dir.resolve("ok.pt");
        TorchCheckpoint.write(w, pt);
        assertThat(TorchCheckpoint.load(pt).data).isEqualTo(w.data);
    }

    @Test
    void refusesZipBombsBeforeInflatingThem() throws IOException {
        // data.pkl names 12M floats (48 MB) of zeros, which DEFLATE packs into a file of a few hundred KB
        int numel = 12_000_000;
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark().string("embed.W_E").tensorV2("FloatStorage", "0", "cpu", numel, 0, new long[] {numel / 50, 50},
                new long[] {50, 1});
        Path bomb = dir.resolve("bomb.pt");
        try (OutputStream out = Files.newOutputStream(bomb); ZipOutputStream zip = new ZipOutputStream(out)) {
            zip.putNextEntry(new ZipEntry("bomb/data.pkl"));
            zip.write(pkl.setitems().stop().toByteArray());
            zip.putNextEntry(new ZipEntry("bomb/data/0"));
            byte[] zeros = new byte[1 << 20];
            zip.setLevel(Deflater.BEST_SPEED);
            for (int i = 0; i < 4 * numel / zeros.length; i++) {
                zip.write(zeros);
            }
        }
        long size = Files.size(bomb);
        assertThat(size).isLessThan(1 << 20);
        long cap = TorchCheckpoint.INFLATE_FLOOR + TorchCheckpoint.INFLATE_RATIO * size;
        assertThat(4L * numel).isGreaterThan(cap);
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(bomb)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + bomb + ": its tensors need more than " + cap + " bytes (16 times the "
                        + "file's size + 32 MiB), expected a torch.save file, which stores its tensors uncompressed");

        // a storage that claims 16 bytes in the zip directory and data.pkl, but inflates to 8 MB
        PickleWriter small = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        small.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 4, 0, new long[] {4}, new long[] {1});
        Path liar = dir.resolve("liar.pt");
        try (OutputStream out = Files.newOutputStream(liar); ZipOutputStream zip = new ZipOutputStream(out)) {
            zip.putNextEntry(new ZipEntry("liar/data.pkl"));
            zip.write(small.setitems().stop().toByteArray());
            zip.putNextEntry(new ZipEntry("liar/data/0"));
            byte[] zeros = new byte[1 << 20];
            for (int i = 0; i < 8; i++) {
                zip.write(zeros);
            }
        }
        byte[] b = Files.readAllBytes(liar);
        int cen = lastIndexOf(b, new byte[] {'P', 'K', 1, 2}); // the central directory entry of liar/data/0
        java.nio.ByteBuffer.wrap(b, cen + 24, 4).order(ByteOrder.LITTLE_ENDIAN).putInt(16);
        Files.write(liar, b);
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(liar)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + liar + ": entry 'liar/data/0' is corrupted (size or CRC does not match "
                        + "the zip directory): expected an intact torch.save file");
    }

    @Test
    void viewsOfOneStorageMayDifferInDtypeButNotInSize() throws IOException {
        byte[] bytes = PtFiles.floats(ByteOrder.LITTLE_ENDIAN, 1f, 2f, 3f, 4f);
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark().string("f").tensorV2("FloatStorage", "0", "cpu", 4, 0, new long[] {4}, new long[] {1});
        pkl.string("i").tensorV2("IntStorage", "0", "cpu", 4, 0, new long[] {4}, new long[] {1});
        Path p = PtFiles.zip(dir.resolve("retyped.pt"), Map.of("a/data.pkl", pkl.setitems().stop().toByteArray(),
                "a/data/0", bytes));
        Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(p);
        assertTensor(sd.get("f"), "float32", new int[] {4}, 1f, 2f, 3f, 4f);
        assertThat(sd.get("i").values()[0]).isEqualTo(Float.floatToIntBits(1f));

        PickleWriter other = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        other.mark().string("f").tensorV2("FloatStorage", "0", "cpu", 4, 0, new long[] {4}, new long[] {1});
        other.string("d").tensorV2("DoubleStorage", "0", "cpu", 4, 0, new long[] {4}, new long[] {1});
        Path p2 = PtFiles.zip(dir.resolve("resized.pt"), Map.of("a/data.pkl", other.setitems().stop().toByteArray(),
                "a/data/0", bytes));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + p2 + ": storage '0' is named as 4 float32 values and as 4 float64 values, "
                        + "expected one size per storage");
    }

    @Test
    void refusesStridesAndOffsetsBeyondAnyStorage() throws IOException {
        long[][] cases = {{1L << 62, 1}, {Long.MAX_VALUE / 2, 1}};
        for (long[] stride : cases) {
            PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
            pkl.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 9, 0, new long[] {3, 3}, stride);
            Path p = PtFiles.zip(dir.resolve("stride.pt"), Map.of("a/data.pkl", pkl.setitems().stop().toByteArray(),
                    "a/data/0", new byte[36]));
            assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p)).isInstanceOf(TrilensException.class)
                    .hasMessage("checkpoint " + p + ": tensor 'x' (size [3, 3], stride " + Arrays.toString(stride)
                            + ", offset 0) has a negative or huge stride");
        }
        // strides that are each fine but add up past 2^62, from an offset near 2^63
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark().string("x").tensorV2("FloatStorage", "0", "cpu", 9, Long.MAX_VALUE - 5, new long[] {3, 3},
                new long[] {3, 1});
        Path p = PtFiles.zip(dir.resolve("offset.pt"), Map.of("a/data.pkl", pkl.setitems().stop().toByteArray(),
                "a/data/0", new byte[36]));
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p)).isInstanceOf(TrilensException.class)
                .hasMessageEndingWith("needs more than 2147483639 elements of storage '0', which holds only 9");
    }

    /** A state dict of the given tensors, each "name" -> {storage type, numel, size...}, over the storages. */
    private Path handBuilt(String file, Map<String, byte[]> storages, Object[][] tensors) throws IOException {
        PickleWriter pkl = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce();
        pkl.mark();
        for (Object[] t : tensors) {
            pkl.string((String) t[0]).tensorV2((String) t[1], (String) t[2], "cpu", (Long) t[3], 0, (long[]) t[4],
                    (long[]) t[5]);
        }
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("a/data.pkl", pkl.setitems().stop().toByteArray());
        storages.forEach((key, bytes) -> entries.put("a/data/" + key, bytes));
        return PtFiles.zip(dir.resolve(file), entries);
    }

    @Test
    void convertsEveryStorageDtypeToFloat() throws IOException {
        java.nio.ByteBuffer shorts = java.nio.ByteBuffer.allocate(6).order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) -3).putShort((short) 300).putShort((short) -32768);
        java.nio.ByteBuffer ints = java.nio.ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(-70_000).putInt(1 << 24);
        // float16: +inf, -inf, a NaN, the negative subnormal -2^-24, -0
        java.nio.ByteBuffer halves = java.nio.ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) 0x7c00).putShort((short) 0xfc00).putShort((short) 0x7e00).putShort((short) 0x8001)
                .putShort((short) 0x8000);
        Map<String, byte[]> storages = new LinkedHashMap<>();
        storages.put("0", shorts.array());
        storages.put("1", new byte[] {0, (byte) 200, (byte) 255});
        storages.put("2", new byte[] {0, (byte) 200, 127});
        storages.put("3", ints.array());
        storages.put("4", halves.array());
        Path p = handBuilt("dtypes.pt", storages, new Object[][] {
            {"s", "ShortStorage", "0", 3L, new long[] {3}, new long[] {1}},
            {"u", "ByteStorage", "1", 3L, new long[] {3}, new long[] {1}},
            {"c", "CharStorage", "2", 3L, new long[] {3}, new long[] {1}},
            {"i", "IntStorage", "3", 2L, new long[] {2}, new long[] {1}},
            {"h", "HalfStorage", "4", 5L, new long[] {5}, new long[] {1}},
        });
        Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(p);
        assertTensor(sd.get("s"), "int16", new int[] {3}, -3, 300, -32768);
        assertTensor(sd.get("u"), "uint8", new int[] {3}, 0, 200, 255);
        assertTensor(sd.get("c"), "int8", new int[] {3}, 0, -56, 127);
        assertTensor(sd.get("i"), "int32", new int[] {2}, -70_000, 1 << 24);
        assertThat(bits(sd.get("h").values())).containsExactly(bits(new float[] {Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY, Float.NaN, -0x1p-24f, -0f}));
    }

    @Test
    void aDimensionOfSizeOneMayHaveAnyStride() throws IOException {
        // torch leaves such strides on unsqueezed dimensions: the view never steps along them
        byte[] floats = PtFiles.floats(ByteOrder.LITTLE_ENDIAN, 1f, 2f, 3f);
        Path ok = handBuilt("unsqueezed.pt", Map.of("0", floats), new Object[][] {
            {"x", "FloatStorage", "0", 3L, new long[] {1, 3}, new long[] {1L << 40, 1}}});
        assertTensor(TorchCheckpoint.readStateDict(ok).get("x"), "float32", new int[] {1, 3}, 1f, 2f, 3f);
        Path bad = handBuilt("stepping.pt", Map.of("0", floats), new Object[][] {
            {"x", "FloatStorage", "0", 3L, new long[] {2, 3}, new long[] {1L << 40, 1}}});
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(bad)).isInstanceOf(TrilensException.class)
                .hasMessageEndingWith("has a negative or huge stride");
    }

    @Test
    void emptyTensorsAndExpandedViewsReadAsTorchHasThem() throws IOException {
        // torch.zeros(0, 4) saves an empty storage; x.expand(3, 2) of a row of 2 steps 0 along its first dimension
        Path p = handBuilt("empty-and-expanded.pt", Map.of("0", new byte[0],
                "1", PtFiles.floats(ByteOrder.LITTLE_ENDIAN, 5f, 7f)), new Object[][] {
            {"empty", "FloatStorage", "0", 0L, new long[] {0, 4}, new long[] {4, 1}},
            {"expanded", "FloatStorage", "1", 2L, new long[] {3, 2}, new long[] {0, 1}}});
        Map<String, TorchCheckpoint.Tensor> sd = TorchCheckpoint.readStateDict(p);
        assertTensor(sd.get("empty"), "float32", new int[] {0, 4});
        assertTensor(sd.get("expanded"), "float32", new int[] {3, 2}, 5f, 7f, 5f, 7f, 5f, 7f);
    }

    @Test
    void refusesViewsAndStoragesBeyondTheBudget() throws IOException {
        // one float viewed 200 times as a million elements of stride 0: 800 MB of floats from a 4-byte storage
        Object[][] views = new Object[200][];
        for (int i = 0; i < views.length; i++) {
            views[i] = new Object[] {"v" + i, "FloatStorage", "0", 1L, new long[] {1_000_000}, new long[] {0}};
        }
        Path many = handBuilt("views.pt", Map.of("0", new byte[4]), views);
        long cap = TorchCheckpoint.INFLATE_FLOOR + TorchCheckpoint.INFLATE_RATIO * Files.size(many);
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(many)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + many + ": its tensors need more than " + cap + " bytes (16 times the "
                        + "file's size + 32 MiB), expected a torch.save file, which stores its tensors uncompressed");

        Path huge = handBuilt("numel.pt", Map.of("0", new byte[8]), new Object[][] {
            {"x", "FloatStorage", "0", 1L << 40, new long[] {2}, new long[] {1}}});
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(huge)).isInstanceOf(TrilensException.class)
                .hasMessage("checkpoint " + huge + ": storage '0' declares 1099511627776 float32 values, expected 0 "
                        + "to 536870909");
    }

    @Test
    void writesTheSameBytesForTheSameWeights() throws IOException {
        Weights w = Weights.init(ATTN_ONLY, 3);
        Path a = Files.createDirectories(dir.resolve("a")).resolve("m.pt");
        Path b = Files.createDirectories(dir.resolve("b")).resolve("m.pt");
        TorchCheckpoint.write(w, a);
        TorchCheckpoint.write(w, b);
        assertThat(Files.readAllBytes(b)).isEqualTo(Files.readAllBytes(a));
        // not by chance within one clock tick: every entry carries the same fixed time, 1980-01-01 at noon
        try (ZipFile zip = new ZipFile(a.toFile())) {
            assertThat(zip.stream().map(ZipEntry::getTime).distinct().toList())
                    .containsExactly(315_532_800_000L + 12 * 3_600_000L);
        }
    }

    @Test
    void opcodesRazorvineCannotApplyAreRefusedAsAMalformedPickle() throws IOException {
        // POP on an empty stack fails inside razorvine with an index error rather than a PickleException
        Path p = pickleOnly("pop.pt", new PickleWriter().proto(2).op('0').stop().toByteArray());
        assertThatThrownBy(() -> TorchCheckpoint.readStateDict(p)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p + ": data.pkl is not a valid state dict pickle "
                        + "(java.lang.IndexOutOfBoundsException");
    }

    @Test
    void escapesFileTextInMessages() throws IOException {
        Weights w = Weights.init(ATTN_ONLY, 2);
        Map<String, T> tensors = PtFiles.tensorsOf(w);
        tensors.put("blocks.0.\u001b[2J\u001b[31mpwned\nfake line\u202e", T.f32(new long[] {1}, 1f));
        Path p = PtFiles.stateDict(dir.resolve("escape.pt"), tensors);
        assertThatThrownBy(() -> Checkpoints.load(p)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("checkpoint " + p + ": unexpected key "
                        + "'blocks.0.\\x1b[2J\\x1b[31mpwned\\x0afake line\\u202e', not a parameter")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\u001b", "\n", "\u202e"));

        byte[] evil = new PickleWriter().proto(2).global("os\u001b]0;title\u0007", "system").stop().toByteArray();
        Path p2 = pickleOnly("global.pt", evil);
        assertThatThrownBy(() -> Checkpoints.load(p2)).isInstanceOf(TrilensException.class)
                .hasMessage("refusing to load " + p2 + ": pickle references global 'os\\x1b]0;title\\x07.system', "
                        + "which is not a tensor state dict type");
    }

    static int lastIndexOf(byte[] hay, byte[] needle) {
        for (int i = hay.length - needle.length; i >= 0; i--) {
            if (Arrays.equals(hay, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        throw new AssertionError("not found");
    }

    static void assertTensor(TorchCheckpoint.Tensor t, String dtype, int[] shape, float... values) {
        assertThat(t.dtype()).isEqualTo(dtype);
        assertThat(t.shape()).isEqualTo(shape);
        assertThat(t.values()).containsExactly(values);
    }

    static int[] bits(float[] a) {
        int[] out = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = Float.floatToRawIntBits(a[i]);
        }
        return out;
    }

    static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }
}

package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.io.StateDictUnpickler.StorageRef;
import dev.trilens.io.StateDictUnpickler.TensorRef;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import net.razorvine.pickle.PickleException;
import org.junit.jupiter.api.Test;

/**
 * The unpickler on its own: the other ways a pickle can spell a state dict (other protocols, opcodes and wrappers
 * than torch.save's default), and the bounds and type checks that refuse what no state dict needs.
 */
class StateDictUnpicklerTest {

    private static Object load(PickleWriter w) throws IOException {
        return new StateDictUnpickler("m.pt").loads(w.stop().toByteArray());
    }

    private static void assertRefused(PickleWriter w, String message) {
        assertThatThrownBy(() -> load(w)).isInstanceOf(PickleException.class).hasMessage(message);
    }

    /** One float32 tensor of shape [2] viewing storage "0", as _rebuild_tensor_v2 arguments follow it. */
    private static PickleWriter tensor(PickleWriter w) {
        return w.tensorV2("FloatStorage", "0", "cpu", 2, 0, new long[] {2}, new long[] {1});
    }

    private static void assertOneTensor(Object sd) {
        assertThat(sd).isInstanceOf(Map.class);
        assertThat(((Map<?, ?>) sd).keySet().toArray()).containsExactly("w");
        TensorRef t = (TensorRef) ((Map<?, ?>) sd).get("w");
        assertThat(t.storage()).isEqualTo(new StorageRef("float32", "0", 2));
        assertThat(t.size()).containsExactly(2);
    }

    @Test
    void protocolFourNamesItsGlobalsFromTheStack() throws IOException {
        // torch.save(sd, f, pickle_protocol=4): STACK_GLOBAL takes module and name as two strings
        PickleWriter w = new PickleWriter().proto(4).string("collections").string("OrderedDict").op(0x93)
                .emptyTuple().reduce().string("w");
        assertOneTensor(load(tensor(w).setitem()));
        assertRefused(new PickleWriter().proto(4).integer(1).string("OrderedDict").op(0x93),
                "STACK_GLOBAL names a global by a int and a str, expected two strings");
        assertRefused(new PickleWriter().proto(4).string("collections").none().op(0x93),
                "STACK_GLOBAL names a global by a str and a None, expected two strings");
    }

    @Test
    void theOtherWaysToBuildTheDictReadAlike() throws IOException {
        // protocol 0: INST builds the OrderedDict from the arguments after a MARK (none here)
        PickleWriter inst = new PickleWriter().proto(0).mark().op('i')
                .bytes("collections\nOrderedDict\n".getBytes(StandardCharsets.US_ASCII)).string("w");
        assertOneTensor(load(tensor(inst).setitem()));
        // OBJ: the class is the first item after the MARK
        PickleWriter obj = new PickleWriter().proto(2).mark().global("collections", "OrderedDict").op('o')
                .string("w");
        assertOneTensor(load(tensor(obj).setitem()));
        assertRefused(new PickleWriter().proto(2).mark().op('o'), "OBJ without a class");
        // NEWOBJ_EX with no keyword arguments
        PickleWriter newObjEx = new PickleWriter().proto(4).global("collections", "OrderedDict").emptyTuple()
                .emptyDict().op(0x92).string("w");
        assertOneTensor(load(tensor(newObjEx).setitem()));
        assertRefused(new PickleWriter().proto(4).global("collections", "OrderedDict").emptyTuple().emptyDict()
                .string("a").integer(1).setitem().op(0x92),
                "NEWOBJ_EX passes keyword arguments, which no state dict type takes");
        assertRefused(new PickleWriter().proto(4).global("collections", "OrderedDict").emptyTuple().emptyTuple()
                .op(0x92), "NEWOBJ_EX passes keyword arguments, which no state dict type takes");
        // DICT: keys and values after a MARK
        assertOneTensor(load(tensor(new PickleWriter().proto(2).mark().string("w")).op('d')));
    }

    @Test
    void theStateDictsMetadataSetByBuildIsIgnored() throws IOException {
        // torch.save(model.state_dict()) pickles the OrderedDict's _metadata attribute as its state, set by BUILD
        PickleWriter w = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple().reduce()
                .string("w");
        tensor(w).setitem().emptyDict().string("_metadata").global("collections", "OrderedDict").emptyTuple()
                .reduce().setitem().build();
        assertOneTensor(load(w));
        assertRefused(new PickleWriter().proto(2).none().build(), "BUILD without an object");
    }

    @Test
    void parametersAndTorchSizesUnwrapToTheirTensors() throws IOException {
        // torch.save of nn.Parameters: _rebuild_parameter(tensor, requires_grad, backward_hooks)
        for (String rebuild : new String[] {"_rebuild_parameter", "_rebuild_parameter_with_state"}) {
            PickleWriter w = new PickleWriter().proto(2).emptyDict().string("w")
                    .global("torch._utils", rebuild).mark();
            tensor(w).bool(true).global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce();
            assertOneTensor(load(w.setitem()));
        }
        assertRefused(new PickleWriter().proto(2).global("torch._utils", "_rebuild_parameter").mark().integer(1)
                .tuple().reduce(), "_rebuild_parameter called without a tensor");
        assertRefused(new PickleWriter().proto(2).global("torch._utils", "_rebuild_parameter").emptyTuple()
                .reduce(), "_rebuild_parameter called without a tensor");

        // sizes written as torch.Size((3, 2)), and torch.Size() for a scalar
        PickleWriter sized = new PickleWriter().proto(2).emptyDict().mark().string("m")
                .global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("0").string("cpu").integer(6).tuple()
                .binpersid().integer(0).global("torch", "Size").intTuple(3, 2).op(0x85).reduce().intTuple(2, 1)
                .tuple().reduce().string("s").global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("1").string("cpu").integer(1).tuple()
                .binpersid().integer(0).global("torch", "Size").emptyTuple().reduce().emptyTuple().tuple().reduce()
                .setitems();
        Map<?, ?> sd = (Map<?, ?>) load(sized);
        assertThat(((TensorRef) sd.get("m")).size()).containsExactly(3, 2);
        assertThat(((TensorRef) sd.get("s")).size()).isEmpty();
    }

    @Test
    void sizesAndOffsetsMustBeIntegersOf64Bits() throws IOException {
        // an offset of 2^40 arrives as a Long (LONG1), and is a valid integer here; the storage check comes later
        PickleWriter big = new PickleWriter().proto(2).emptyDict().string("w")
                .tensorV2("FloatStorage", "0", "cpu", 2, 1L << 40, new long[] {2}, new long[] {1});
        assertThat(((TensorRef) ((Map<?, ?>) load(big.setitem())).get("w")).offset()).isEqualTo(1L << 40);
        // LONG1 of nine bytes: 2^64
        PickleWriter huge = new PickleWriter().proto(2).global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("0").string("cpu").integer(2).tuple()
                .binpersid().op(0x8a).op(9).bytes(new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 1})
                .intTuple(2).intTuple(1).tuple().reduce();
        assertRefused(huge, "storage offset needs more than 64 bits, expected an integer");
        // 2^63, one past the largest long, in LONG1's nine bytes
        PickleWriter past = new PickleWriter().proto(2).global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("0").string("cpu").integer(2).tuple()
                .binpersid().op(0x8a).op(9).bytes(new byte[] {0, 0, 0, 0, 0, 0, 0, (byte) 0x80, 0})
                .intTuple(2).intTuple(1).tuple().reduce();
        assertRefused(past, "storage offset needs more than 64 bits, expected an integer");
        // a float: BINFLOAT 1.5
        PickleWriter real = new PickleWriter().proto(2).global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("0").string("cpu").integer(2).tuple()
                .binpersid().integer(0).op('(').op('G').bytes(ByteBuffer.allocate(8).putDouble(1.5).array())
                .tuple().intTuple(1).tuple().reduce();
        assertRefused(real, "size is a float, expected an integer");
        // protocol 0's LONG, with and without Python 2's L suffix
        PickleWriter text = new PickleWriter().proto(2).emptyDict().string("w")
                .global("torch._utils", "_rebuild_tensor_v2").mark()
                .mark().string("storage").global("torch", "FloatStorage").string("0").string("cpu")
                .op('L').bytes("2L\n".getBytes(StandardCharsets.US_ASCII)).tuple()
                .binpersid().op('L').bytes("0\n".getBytes(StandardCharsets.US_ASCII)).intTuple(2).intTuple(1).tuple()
                .reduce().setitem();
        assertOneTensor(load(text));
    }

    @Test
    void longDecimalIntegersAreCappedAtFortyCharacters() throws IOException {
        String forty = "1".repeat(39) + "L";
        Object ok = load(new PickleWriter().proto(0).op('L').bytes((forty + "\n").getBytes(StandardCharsets.US_ASCII)));
        assertThat(ok).isEqualTo(new BigInteger("1".repeat(39)));
        assertRefused(new PickleWriter().proto(0).op('L').bytes(("9" + forty + "\n").getBytes(StandardCharsets.US_ASCII)),
                "an integer of 41 characters, expected at most 40");
        assertRefused(new PickleWriter().proto(0).op('L').bytes("12x\n".getBytes(StandardCharsets.US_ASCII)),
                "LONG is not a decimal integer");
    }

    @Test
    void aForgedLengthIsRefusedBeforeAnythingIsAllocated() throws IOException {
        // BINUNICODE8 (protocol 4) holding "ab", then the same opcode claiming 2^56 bytes
        byte[] two = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(2).array();
        assertThat(load(new PickleWriter().proto(4).op(0x8d).bytes(two).bytes("ab".getBytes(StandardCharsets.UTF_8))))
                .isEqualTo("ab");
        byte[] huge = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 56).array();
        assertRefused(new PickleWriter().proto(4).op(0x8d).bytes(huge).bytes(new byte[16]),
                "a value's length runs past the end of data.pkl");
        // 2 GB in BINUNICODE's four bytes, whose low byte is zero
        assertRefused(new PickleWriter().proto(2).op('X').bytes(new byte[] {0, 0, 0, 0x7f}).bytes(new byte[16]),
                "a value's length runs past the end of data.pkl");
        // one byte more than the pickle holds after the length (16 bytes, then STOP)
        assertRefused(new PickleWriter().proto(2).op('X').bytes(new byte[] {18, 0, 0, 0}).bytes(new byte[16]),
                "a value's length runs past the end of data.pkl");
    }

    @Test
    void marksCountAsObjectsBuilt() {
        // 100,000 MARKs and nothing else: each one is a stack entry, as a None would be
        PickleWriter marks = new PickleWriter().proto(2);
        for (int i = 0; i < 100_000; i++) {
            marks.mark();
        }
        assertRefused(marks, "it builds more than 54097 objects, far more than a state dict of its size needs");
    }

    @Test
    void nestingIsAllowedToThirtyTwoLevels() throws IOException {
        // {"x": ((...(1,)...),)}: k tuples make the dict k + 1 deep
        for (int k : new int[] {31, 32}) {
            PickleWriter w = new PickleWriter().proto(2).emptyDict().string("x").integer(1);
            for (int i = 0; i < k; i++) {
                w.op(0x85);
            }
            w.setitem();
            if (k == 31) {
                assertThat(((Map<?, ?>) load(w)).get("x")).isInstanceOf(Object[].class);
            } else {
                assertRefused(w, "it nests containers more than 32 deep, expected a flat state dict");
            }
        }
        // a list that APPENDS puts into itself
        assertRefused(new PickleWriter().proto(2).op(']').op('q').op(0).mark().op('h').op(0).op('e'),
                "it puts a list inside itself");
    }

    @Test
    void messagesNameWhatThePickleBuiltInPythonsWords() {
        // calling something that is not one of the allowed functions
        assertRefused(new PickleWriter().proto(2).none().emptyTuple().reduce(),
                "it calls a None, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(2).string("os.system").emptyTuple().reduce(),
                "it calls a str, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(2).bool(true).emptyTuple().reduce(),
                "it calls a bool, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(2).op('G').bytes(new byte[8]).emptyTuple().reduce(),
                "it calls a float, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(3).op('C').op(1).op('x').emptyTuple().reduce(),
                "it calls a bytes, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(2).emptyDict().emptyTuple().reduce(),
                "it calls a dict, expected one of torch's rebuild functions");
        assertRefused(new PickleWriter().proto(2).mark().string("storage").global("torch", "FloatStorage")
                        .string("0").string("cpu").integer(1).tuple().binpersid().emptyTuple().reduce(),
                "it calls a storage, expected one of torch's rebuild functions");
        assertRefused(tensor(new PickleWriter().proto(2)).emptyTuple().reduce(),
                "it calls a tensor, expected one of torch's rebuild functions");
        // an allowed name that only stands for a dtype, and a call without a tuple of arguments
        assertRefused(new PickleWriter().proto(2).global("torch", "FloatStorage").emptyTuple().reduce(),
                "torch.FloatStorage is not callable here");
        assertRefused(new PickleWriter().proto(2).global("torch._utils", "_rebuild_tensor_v2")
                .global("torch", "HalfStorage").reduce(),
                "torch._utils._rebuild_tensor_v2 is called with a torch.HalfStorage, expected a tuple");
    }
}

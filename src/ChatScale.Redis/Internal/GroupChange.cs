using System.Buffers.Binary;
using System.Text;

namespace ChatScale.Redis.Internal;

/// <summary>
/// A join or leave announced on the group changes channel:
/// <c>op (1: '+' or '-') | change id (16) | originLen (2, BE) | origin | groupLen (2, BE) | group | user</c>.
/// </summary>
internal readonly record struct GroupChange(bool Joined, Guid ChangeId, string OriginNodeId, string GroupId, string UserId)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public byte[] Encode()
    {
        var origin = StrictUtf8.GetBytes(OriginNodeId);
        var group = StrictUtf8.GetBytes(GroupId);
        var user = StrictUtf8.GetBytes(UserId);
        var buffer = new byte[1 + 16 + 2 + origin.Length + 2 + group.Length + user.Length];
        var span = buffer.AsSpan();
        span[0] = Joined ? (byte)'+' : (byte)'-';
        ChangeId.TryWriteBytes(span.Slice(1, 16), bigEndian: true, out _);
        var pos = 17;
        BinaryPrimitives.WriteUInt16BigEndian(span[pos..], (ushort)origin.Length);
        origin.CopyTo(span[(pos + 2)..]);
        pos += 2 + origin.Length;
        BinaryPrimitives.WriteUInt16BigEndian(span[pos..], (ushort)group.Length);
        group.CopyTo(span[(pos + 2)..]);
        pos += 2 + group.Length;
        user.CopyTo(span[pos..]);
        return buffer;
    }

    /// <exception cref="FormatException">The bytes are not a change.</exception>
    public static GroupChange Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 21 || data[0] is not ((byte)'+' or (byte)'-'))
        {
            throw new FormatException("Not a group change.");
        }

        var id = new Guid(data.Slice(1, 16), bigEndian: true);
        var pos = 17;
        var origin = ReadString(data, ref pos);
        var group = ReadString(data, ref pos);
        var user = StrictUtf8.GetString(data[pos..]);
        if (group.Length == 0 || user.Length == 0)
        {
            throw new FormatException("A group change needs a group and a user.");
        }

        return new GroupChange(data[0] == '+', id, origin, group, user);
    }

    /// <summary>An acknowledgement of a change: <c>change id (16) | node id</c>.</summary>
    public static byte[] EncodeAck(Guid changeId, string nodeId)
    {
        var buffer = new byte[16 + StrictUtf8.GetByteCount(nodeId)];
        changeId.TryWriteBytes(buffer, bigEndian: true, out _);
        StrictUtf8.GetBytes(nodeId, buffer.AsSpan(16));
        return buffer;
    }

    public static bool TryDecodeAck(ReadOnlySpan<byte> data, out Guid changeId, out string nodeId)
    {
        changeId = default;
        nodeId = string.Empty;
        if (data.Length <= 16)
        {
            return false;
        }

        try
        {
            nodeId = StrictUtf8.GetString(data[16..]);
        }
        catch (ArgumentException)
        {
            return false;
        }

        changeId = new Guid(data[..16], bigEndian: true);
        return true;
    }

    private static string ReadString(ReadOnlySpan<byte> data, ref int pos)
    {
        if (data.Length - pos < 2)
        {
            throw new FormatException("Group change truncated.");
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
        pos += 2;
        if (data.Length - pos < length)
        {
            throw new FormatException("Group change truncated.");
        }

        var value = StrictUtf8.GetString(data.Slice(pos, length));
        pos += length;
        return value;
    }
}

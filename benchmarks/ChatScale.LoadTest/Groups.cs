namespace ChatScale.LoadTest;

/// <summary>
/// The recipient groups of a scenario, built the same way by the driver and by every node: group g of size S is the
/// users g*S .. g*S+S-1 (mod U). User i connects to node i mod N, so every group of 2 or more spans all nodes.
/// </summary>
internal sealed class Groups
{
    private readonly string[][] _groups;

    public Groups(int users, int size)
    {
        Users = users;
        Size = size;
        var count = Math.Max(1, users / size);
        _groups = new string[count][];
        for (var g = 0; g < count; g++)
        {
            var members = new string[size];
            for (var j = 0; j < size; j++)
            {
                members[j] = UserId(((g * size) + j) % users);
            }

            _groups[g] = members;
        }
    }

    public int Users { get; }

    public int Size { get; }

    public int Count => _groups.Length;

    public string[] this[int group] => _groups[group];

    public static string UserId(int index) => "u" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

"""Reading what an export download is: one ZIP with the data file and its signed manifest."""
import io
import json
import zipfile


def unpack(body: bytes) -> tuple[bytes, dict]:
    """(the data file, the manifest) of an export archive; asserts it holds exactly those two."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
        assert len(names) == 2 and names[1] == names[0] + ".manifest.json", names
        assert archive.testzip() is None  # every entry's CRC checks
        return archive.read(names[0]), json.loads(archive.read(names[1]))

/// Random object IDs: 25 characters of lowercase base36 (about 129 bits), like SwarmKit's.
public enum Identifiers {
    public static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        return String((0..<25).map { _ in alphabet[Int(rng.next() % 36)] })
    }
}

fn main() {
    eprintln!("client: not built yet");
    std::process::exit(1);
}

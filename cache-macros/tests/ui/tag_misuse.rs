fn main() {
    let author = "Le Guin";
    // A placeholder without an argument.
    let _ = cachette::tag!("author:<name>", nmae = author);
    // An argument without a placeholder.
    let _ = cachette::tag!("author:<name>", name = author, id = 1);
    // A value that is not `Display`.
    let _ = cachette::tag!("author:<name>", name = vec![1]);
}

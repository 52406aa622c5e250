//! What an officer reads when something goes wrong: every [`DeviceError`] as a sentence in
//! Vietnamese or English. The `Display` form of the error stays English, for logs.

use crate::device::DeviceError;

impl DeviceError {
    /// The error as a sentence for the user, in `lang` ("vi", the default, or "en").
    pub fn user_message(&self, lang: &str) -> String {
        let en = lang == "en";
        let t = |vi: &str, english: &str| if en { english.to_owned() } else { vi.to_owned() };
        use DeviceError as E;
        match self {
            E::InvalidCredentials => t("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."),
            E::TooManyAttempts => t(
                "Nhập sai mật khẩu nhiều lần; hãy đợi một phút rồi thử lại.",
                "Too many wrong passwords; wait a minute and try again.",
            ),
            E::Unauthorized => t(
                "Thiết bị này không còn được đăng nhập; hãy đăng nhập lại. Dữ liệu trên máy vẫn được giữ.",
                "This device is no longer signed in; sign in again. Nothing on the phone is lost.",
            ),
            E::UpgradeRequired => t(
                "Ứng dụng đã cũ so với máy chủ; hãy cập nhật ứng dụng.",
                "This app is too old for the server; please update it.",
            ),
            E::Insecure(_) => t(
                "Địa chỉ máy chủ phải bắt đầu bằng https:// để dữ liệu được mã hóa trên đường truyền; hãy báo quản trị viên.",
                "The server address must start with https:// so that data is encrypted on the way; tell your administrator.",
            ),
            E::Certificate(problem) => {
                use crate::tls::CertificateProblem as P;
                match problem {
                    P::UnknownIssuer => t(
                        "Chứng thư của máy chủ không được tin cậy: có thể đang kết nối nhầm máy chủ hoặc bị nghe lén. Không gửi dữ liệu; hãy báo quản trị viên.",
                        "The server's certificate is not trusted: this may be the wrong server or someone listening in. Nothing was sent; tell your administrator.",
                    ),
                    P::Expired => t(
                        "Chứng thư của máy chủ đã hết hạn hoặc chưa có hiệu lực; hãy kiểm tra ngày giờ của điện thoại, rồi báo quản trị viên.",
                        "The server's certificate has expired or is not valid yet; check the phone's date and time, then tell your administrator.",
                    ),
                    P::WrongName => t(
                        "Chứng thư không phải của máy chủ này. Không gửi dữ liệu; hãy báo quản trị viên.",
                        "The certificate is not this server's. Nothing was sent; tell your administrator.",
                    ),
                    P::PinMismatch => t(
                        "Khóa của máy chủ không khớp với khóa đã cài trong ứng dụng. Không gửi dữ liệu; hãy báo quản trị viên.",
                        "The server's key does not match the key set in the app. Nothing was sent; tell your administrator.",
                    ),
                    P::Other => t(
                        "Không thiết lập được kết nối an toàn tới máy chủ. Không gửi dữ liệu; hãy báo quản trị viên.",
                        "A secure connection to the server could not be set up. Nothing was sent; tell your administrator.",
                    ),
                }
            }
            E::Locked => t("Ứng dụng đang khóa; hãy nhập mã PIN.", "The app is locked; enter your PIN."),
            E::WrongPin { left } => {
                if en {
                    format!("Wrong PIN. {left} tries left; after that the data on this phone is erased.")
                } else {
                    format!("Sai mã PIN. Còn {left} lần thử; sau đó dữ liệu trên máy sẽ bị xóa.")
                }
            }
            E::Wiped => t(
                "Nhập sai mã PIN quá nhiều lần: dữ liệu trên máy đã bị xóa. Hãy đăng nhập lại; hồ sơ đã gửi vẫn còn trên máy chủ.",
                "Too many wrong PINs: the data on this phone was erased. Sign in again; records already sent are safe on the server.",
            ),
            E::BadPin => t("Mã PIN gồm 4 đến 32 ký tự.", "A PIN has 4 to 32 characters."),
            E::WipeOrdered => t(
                "Quản trị viên đã thu hồi thiết bị này; dữ liệu trên máy đã được xóa.",
                "An administrator took this device out of service; its data was erased.",
            ),
            E::Unreachable(_) => t(
                "Không kết nối được máy chủ. Dữ liệu vẫn được lưu trên máy và sẽ gửi khi có sóng.",
                "The server cannot be reached. Your data is kept on the phone and will be sent when there is signal.",
            ),
            E::Server { message, .. } => {
                if en {
                    format!("The server refused the request: {message}")
                } else {
                    format!("Máy chủ từ chối yêu cầu: {message}")
                }
            }
            E::NotLoggedIn => t("Hãy đăng nhập trước.", "Sign in first."),
            E::UnknownTemplate(id) => {
                if en {
                    format!("The form {id:?} is not on this phone; sync first.")
                } else {
                    format!("Biểu mẫu {id:?} chưa có trên máy; hãy đồng bộ trước.")
                }
            }
            E::UnknownRecord(_) => t("Không tìm thấy hồ sơ này trên máy.", "This record is not on the phone."),
            E::UnknownField(path) => {
                if en {
                    format!("The form has no field or row {path}.")
                } else {
                    format!("Biểu mẫu không có trường hoặc dòng {path}.")
                }
            }
            E::InvalidPeriod(why) => {
                if en {
                    format!("Invalid reporting period: {why}")
                } else {
                    format!("Kỳ báo cáo không hợp lệ: {why}")
                }
            }
            E::InvalidValue(why) => {
                if en {
                    format!("Invalid value: {why}")
                } else {
                    format!("Giá trị không hợp lệ: {why}")
                }
            }
            E::NotEditable(state) => {
                if en {
                    format!("The record is {state} and cannot be edited now.")
                } else {
                    format!("Hồ sơ đang ở trạng thái {} nên không sửa được.", state_vi(state))
                }
            }
            E::Incomplete { issues } => {
                let list = issues.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join("; ");
                if en {
                    format!("The record cannot be submitted yet: {list}")
                } else {
                    format!("Chưa gửi được hồ sơ: {list}")
                }
            }
            E::Storage(_) => t(
                "Lỗi bộ nhớ trên máy; dữ liệu đã lưu không bị mất. Hãy thử lại hoặc báo quản trị.",
                "A storage error on the phone; saved data is not lost. Try again or tell the administrator.",
            ),
            E::WrongKey => t(
                "Không mở được kho dữ liệu trên máy bằng khoá này.",
                "The data on this phone cannot be opened with this key.",
            ),
            E::KeyUnavailable(_) => t(
                "Không lấy được khoá bảo vệ dữ liệu trên máy; hãy mở khoá điện thoại rồi thử lại.",
                "The key protecting the phone's data is not available; unlock the phone and try again.",
            ),
            E::TooLarge(why) => {
                if en {
                    format!("The file is too large: {why}")
                } else {
                    format!("Tệp quá lớn: {why}")
                }
            }
            E::UnknownAttachment(_) => {
                t("Ảnh hoặc tệp này chưa có trên máy.", "This photo or file is not on the phone yet.")
            }
            E::Cancelled => t(
                "Đã dừng đồng bộ. Phần đã gửi được giữ; lần sau sẽ tiếp tục.",
                "Sync stopped. What was sent is kept; the next sync carries on.",
            ),
        }
    }
}

fn state_vi(state: &str) -> &str {
    match state {
        "submitted" => "đã gửi",
        "approved" => "đã phê duyệt",
        "signed_off" => "đã ký xác nhận",
        "returned" => "bị trả lại",
        "reopened" => "mở lại",
        "draft" => "nháp",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_language() {
        let e = DeviceError::Unreachable("connection refused".into());
        assert!(e.user_message("vi").starts_with("Không kết nối được máy chủ"));
        assert!(e.user_message("en").starts_with("The server cannot be reached"));
        assert_eq!(
            DeviceError::NotEditable("approved".into()).user_message("vi"),
            "Hồ sơ đang ở trạng thái đã phê duyệt nên không sửa được."
        );
    }
}

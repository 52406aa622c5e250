//! Glossary: the Vietnamese terms of the domain and the English names the code uses.
//!
//! | Vietnamese | English in code | meaning |
//! |---|---|---|
//! | Địa bàn | locality (the product) | the area a commune officer is responsible for |
//! | đơn vị hành chính | unit (`unit_code`) | administrative unit: province (tỉnh), commune (xã, phường, đặc khu), village (thôn, tổ dân phố) |
//! | tỉnh / thành phố | province | upper tier of local government since 1/7/2025 (34 units) |
//! | xã / phường / đặc khu | commune | lower tier (3,321 units); codes per QĐ 19/2025/QĐ-TTg |
//! | cán bộ cơ sở | field officer (`Role::FieldOfficer`) | commune police or People's Committee staff filling records |
//! | lãnh đạo xã | commune lead (`Role::CommuneLead`) | signs off the commune's reports |
//! | cán bộ thẩm định | reviewer (`Role::Reviewer`) | province staff who return or approve submissions |
//! | biểu mẫu | template | a versioned form definition (registry, event, checklist, periodic report) |
//! | hồ sơ / bản ghi | record | one filled instance of a template, one Automerge document |
//! | sổ quản lý | registry | person, hotspot and similar long-lived records |
//! | buổi tuyên truyền | propaganda session | an awareness-raising session logged by the commune |
//! | đối tượng tuyên truyền | audience group | who a propaganda session addressed |
//! | gửi | submit | the officer sends a record up for review |
//! | trả lại | return | a reviewer sends a record back with a comment |
//! | phê duyệt | approve | a reviewer accepts a record; it is then locked |
//! | mở lại | reopen | an approved record is opened for amendment |
//! | điểm, tụ điểm | hotspot | a place where drugs are used, sold or harboured |

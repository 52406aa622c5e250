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
//! | người sử dụng trái phép chất ma túy | user (`user_managed`) | illegal drug user (Law 73/2021 Art. 2(10)); managed for 1 year (Art. 23) |
//! | người nghiện ma túy | addict (`addicted`) | drug-dependent person (Art. 2(12)), determined under Art. 27 |
//! | tái nghiện | relapse | uses again after completing rehab and is determined addicted (NĐ 116 Art. 3(6)) |
//! | cai nghiện tự nguyện / bắt buộc | voluntary / compulsory rehab (`rehab_home`, `rehab_facility`, `compulsory_rehab`) | Arts. 30–33 |
//! | điều trị thay thế (Methadone) | substitution therapy (`methadone`) | opioid substitution treatment |
//! | quản lý sau cai nghiện | post-rehab management (`post_rehab`) | 1 or 2 years after rehab (Art. 40) |
//! | thời hạn quản lý | management period (`periods` rows) | a status with its start, duration and end |
//! | dừng / chấm dứt quản lý | stop / end of management (`end_reason`) | Forms 09 / 10 of NĐ 105/2021 |
//! | tổ quản lý | management team (`team`) | police officer, village rep, family, mass organisation, social worker |
//! | kiểm tra cư trú | residence check (`checks`, reminder `residence_check`) | at least monthly (NĐ 105 Art. 47) |
//! | chuyển nơi cư trú | move (`moves`, `unit_history`) | a person moving to another commune |
//! | tiêu hủy cây có chứa chất ma túy | crop eradication (`crop_eradication`) | drug plants found and destroyed |
//! | cơ sở kinh doanh có điều kiện | conditional business (`business_inspection`) | karaoke, bar, guesthouse, massage, internet shop |
//! | tin báo, tố giác | tip (`public_tip`) | a report from the public; the informant (`tip_informant`) is kept apart |
//! | tổ tự quản, mô hình | self-managed group, model (`group_review`) | reviewed every quarter |
//! | chỉ số | indicator (`indicators`) | a report figure computed from records |
//! | nhắc việc | reminder (`reminders`) | something falling due in a registry |
//! | địa bàn trọng điểm phức tạp về ma túy | complex drug area, types I–III (`commune_assessment`) | classification of QĐ 28/2025/QĐ-TTg |
//! | địa bàn không ma túy | drug-free area (`drug_free_proposed`) | recognised yearly by the province |
//! | dân số thường trú | resident population (`population`) | the base of the classification's rates |
//! | ký xác nhận | sign off | the commune lead's first review level |

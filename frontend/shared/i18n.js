// Vietnamese and English. The language follows the browser (navigator.languages) until the user picks one;
// the pick is remembered on this device. Elements with data-i18n="key" get their text from the dictionary,
// data-i18n-placeholder / data-i18n-title their attributes.

const WORDS = {
  en: {
    app_console: "Dispatch console",
    app_crew: "Crew",
    login: "Log in",
    logout: "Log out",
    username: "User name",
    password: "Password",
    login_failed: "Login failed",
    new_call: "New call",
    search_place: "Search a street, intersection (A x B), hospital…",
    coordinates: "Coordinates (lat, lon)",
    click_map: "or click the map",
    complaint: "Complaint",
    priority: "Priority",
    priority_from_card: "from the card",
    caller: "Caller number",
    address: "Address",
    notes: "Notes",
    create: "Create incident",
    no_location: "Choose a location: search, type coordinates or click the map",
    no_complaint: "Choose a complaint",
    queue: "Incidents",
    no_incidents: "No open incidents",
    recommendations: "Recommended units",
    assign: "Assign",
    assign_hint: "Enter or 1–9 assigns",
    eta: "ETA",
    distance: "Distance",
    unit: "Unit",
    reason: "Why",
    timeline: "Timeline",
    cancel_incident: "Cancel incident",
    cancel_reason: "Reason for cancelling",
    units: "Units",
    all_statuses: "All statuses",
    hospitals: "Hospitals",
    diversion: "Diversion",
    on_diversion: "on diversion",
    connected: "connected",
    disconnected: "disconnected",
    unacknowledged: "not acknowledged",
    acknowledged: "acknowledged",
    live: "Live",
    offline: "Offline",
    reconnecting: "Reconnecting…",
    alert_new: "New {priority} incident #{id}: {complaint}",
    alert_unack: "{callsign} has not acknowledged incident #{id} ({s} s)",
    dismiss: "Dismiss",
    assigned_to: "Assigned",
    waiting: "waiting",
    recommended_hospital: "Recommended hospital",
    no_assignment: "No assignment. Stand by.",
    acknowledge: "ACKNOWLEDGE",
    turns: "Directions",
    queued: "{n} waiting to be sent",
    on_duty: "On duty: sending position",
    position_off: "Position not shared",
    incident: "Incident",
    select_incident: "Select an incident in the queue",
    none_available: "No unit can go",
    language: "Language",
    callsign: "Callsign",
    status: "Status",
    capabilities: "Capabilities",
    hospital_for: "Hospital",
    created: "Incident created",
    confirm_available: "Available ends this job before the patient is handed over: tap again to confirm.",
    tap_again: "Tap again",
    error: "Error",
    "status.available": "Available",
    "status.dispatched": "Dispatched",
    "status.en_route": "En route",
    "status.on_scene": "On scene",
    "status.transporting": "Transporting",
    "status.at_hospital": "At hospital",
    "status.returning": "Returning",
    "status.out_of_service": "Out of service",
    "istatus.received": "waiting",
    "istatus.dispatched": "dispatched",
    "istatus.on_scene": "on scene",
    "istatus.transporting": "transporting",
    "istatus.at_hospital": "at hospital",
    "istatus.closed": "closed",
    "istatus.cancelled": "cancelled",
    app_planner: "Coverage planner",
    crew_not_planner: "A crew account cannot open the planner: log in as a planner, dispatcher or admin",
    threshold: "Threshold",
    minutes: "{m} min",
    loading: "Computing coverage…",
    covered_within: "Demand within {m} min of a station",
    covered: "Covered (nearest station)",
    backup: "Backup (2 or more stations)",
    within: "Within",
    covered_short: "Covered",
    backup_short: "Backup",
    demand: "Demand",
    proxy_warning: "Demand is a proxy, not recorded calls or population:",
    cells_note: "{n} {kind}; {reached} of the demand is reached within the largest threshold.",
    cells_grid: "cells of {m} m",
    cells_h3: "H3 hexagons (resolution {r})",
    legend_title: "Share of a cell's demand covered",
    legend_bin: "{lo} to {hi}",
    legend_top: "{lo} and more",
    show_cells: "Cells",
    show_isochrones: "Station isochrones",
    worst_cells: "Worst-covered cells at {m} min",
    worst_line: "Cell {cell}: {share} covered",
    outside: "{d} demand outside {m} min",
    median: "median",
    not_reached: "not reached",
    downloads: "Downloads",
    dl_cells: "Cells (GeoJSON)",
    dl_isochrones: "Isochrones (GeoJSON)",
    dl_csv: "Table (CSV)",
    dl_png: "Map (PNG)",
    dl_html: "Report (HTML)",
    stations: "Stations",
  },
  vi: {
    app_console: "Bàn điều phối",
    app_crew: "Kíp xe",
    login: "Đăng nhập",
    logout: "Đăng xuất",
    username: "Tên đăng nhập",
    password: "Mật khẩu",
    login_failed: "Đăng nhập không thành công",
    new_call: "Cuộc gọi mới",
    search_place: "Tìm đường, ngã tư (A x B), bệnh viện…",
    coordinates: "Tọa độ (vĩ độ, kinh độ)",
    click_map: "hoặc bấm lên bản đồ",
    complaint: "Lý do gọi",
    priority: "Mức ưu tiên",
    priority_from_card: "theo thẻ phân loại",
    caller: "Số người gọi",
    address: "Địa chỉ",
    notes: "Ghi chú",
    create: "Tạo sự vụ",
    no_location: "Chọn vị trí: tìm kiếm, nhập tọa độ hoặc bấm lên bản đồ",
    no_complaint: "Chọn lý do gọi",
    queue: "Sự vụ",
    no_incidents: "Không có sự vụ đang mở",
    recommendations: "Xe đề xuất",
    assign: "Điều xe",
    assign_hint: "Enter hoặc 1–9 để điều xe",
    eta: "Thời gian đến",
    distance: "Quãng đường",
    unit: "Xe",
    reason: "Lý do",
    timeline: "Diễn biến",
    cancel_incident: "Hủy sự vụ",
    cancel_reason: "Lý do hủy",
    units: "Xe cấp cứu",
    all_statuses: "Mọi trạng thái",
    hospitals: "Bệnh viện",
    diversion: "Ngừng nhận",
    on_diversion: "ngừng nhận bệnh nhân",
    connected: "đang kết nối",
    disconnected: "mất kết nối",
    unacknowledged: "chưa xác nhận",
    acknowledged: "đã xác nhận",
    live: "Trực tuyến",
    offline: "Mất mạng",
    reconnecting: "Đang kết nối lại…",
    alert_new: "Sự vụ {priority} mới #{id}: {complaint}",
    alert_unack: "{callsign} chưa xác nhận sự vụ #{id} ({s} giây)",
    dismiss: "Đóng",
    assigned_to: "Đã điều",
    waiting: "đang chờ",
    recommended_hospital: "Bệnh viện đề xuất",
    no_assignment: "Chưa có nhiệm vụ. Sẵn sàng.",
    acknowledge: "XÁC NHẬN",
    turns: "Chỉ đường",
    queued: "{n} thao tác chờ gửi",
    on_duty: "Đang trực: gửi vị trí",
    position_off: "Không chia sẻ vị trí",
    incident: "Sự vụ",
    select_incident: "Chọn một sự vụ trong danh sách",
    none_available: "Không có xe nào đi được",
    language: "Ngôn ngữ",
    callsign: "Hiệu xe",
    status: "Trạng thái",
    capabilities: "Chuyên khoa",
    hospital_for: "Bệnh viện",
    created: "Đã tạo sự vụ",
    confirm_available: "Sẵn sàng sẽ kết thúc nhiệm vụ khi chưa bàn giao bệnh nhân: bấm lần nữa để xác nhận.",
    tap_again: "Bấm lần nữa",
    error: "Lỗi",
    "status.available": "Sẵn sàng",
    "status.dispatched": "Đã điều",
    "status.en_route": "Đang đến",
    "status.on_scene": "Tại hiện trường",
    "status.transporting": "Đang chở bệnh nhân",
    "status.at_hospital": "Tại bệnh viện",
    "status.returning": "Đang quay về",
    "status.out_of_service": "Ngừng hoạt động",
    "istatus.received": "chờ điều xe",
    "istatus.dispatched": "đã điều xe",
    "istatus.on_scene": "tại hiện trường",
    "istatus.transporting": "đang chở",
    "istatus.at_hospital": "tại bệnh viện",
    "istatus.closed": "đã đóng",
    "istatus.cancelled": "đã hủy",
    app_planner: "Lập kế hoạch bao phủ",
    crew_not_planner: "Tài khoản kíp xe không mở được trang kế hoạch: hãy đăng nhập bằng tài khoản kế hoạch, điều phối hoặc quản trị",
    threshold: "Ngưỡng thời gian",
    minutes: "{m} phút",
    loading: "Đang tính độ bao phủ…",
    covered_within: "Nhu cầu trong vòng {m} phút từ một trạm",
    covered: "Được phục vụ (trạm gần nhất)",
    backup: "Dự phòng (từ 2 trạm trở lên)",
    within: "Trong vòng",
    covered_short: "Được phục vụ",
    backup_short: "Dự phòng",
    demand: "Nhu cầu",
    proxy_warning: "Nhu cầu là số liệu thay thế (ước lượng), không phải cuộc gọi hay dân số thực:",
    cells_note: "{n} {kind}; {reached} nhu cầu tới được trong ngưỡng lớn nhất.",
    cells_grid: "ô lưới {m} m",
    cells_h3: "ô lục giác H3 (độ phân giải {r})",
    legend_title: "Tỷ lệ nhu cầu của ô được phục vụ",
    legend_bin: "{lo} đến {hi}",
    legend_top: "từ {lo} trở lên",
    show_cells: "Ô lưới",
    show_isochrones: "Vùng đẳng thời của trạm",
    worst_cells: "Ô được phục vụ kém nhất ở {m} phút",
    worst_line: "Ô {cell}: {share} được phục vụ",
    outside: "{d} nhu cầu ngoài {m} phút",
    median: "trung vị",
    not_reached: "không tới được",
    downloads: "Tải xuống",
    dl_cells: "Ô lưới (GeoJSON)",
    dl_isochrones: "Vùng đẳng thời (GeoJSON)",
    dl_csv: "Bảng (CSV)",
    dl_png: "Bản đồ (PNG)",
    dl_html: "Báo cáo (HTML)",
    stations: "Trạm",
  },
};

const KEY = "dispatch.lang";

function fromBrowser() {
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const base = String(l).toLowerCase().split("-")[0];
    if (base in WORDS) return base;
  }
  return "en";
}

export let lang = localStorage.getItem(KEY) in WORDS ? localStorage.getItem(KEY) : fromBrowser();

export function t(key, vars = {}) {
  const s = WORDS[lang][key] ?? WORDS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

export function apply(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function setLang(l, onChange) {
  if (!(l in WORDS)) return;
  lang = l;
  localStorage.setItem(KEY, l);
  apply();
  if (onChange) onChange(l);
}

// the triage card's name in the current language
export function cardName(card) {
  if (!card) return "";
  return lang === "vi" ? card.name_vi : card.name_en;
}

export function mmss(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

export function km(metres) {
  if (metres === null || metres === undefined) return "–";
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}
